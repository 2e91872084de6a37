{#- Write-audit-publish. dbt builds and tests the marts in their build schema (`marts`);
    consumers read copies in the published schema (var published_schema). The last
    on-run-end hook, and `dbt run-operation publish_marts` (after a `dbt retry`, say), run
    these steps, one macro each in this folder:
    1. record_node_statuses: this invocation's results of the package's nodes, into the
       state table ml_eval_node_status (ensure_publish_state);
    2. publish_decision: every node of the package passed when it last ran, whichever
       invocation ran it; else one info line and nothing published;
    3. the checks, each refusing with one `not published: ...` warning (an error under
       --warn-error), published unchanged: a by-run mart has a run_uuid column; the
       evaluated runs do not shrink past publish_max_shrink (shrink_refusal) unless forced;
       a mart whose columns changed has no consumer view on its published table;
    4. one transaction: per mart refresh_whole_mart or refresh_mart_by_run (DML only), DDL
       (create_published_table) only for a mart published for the first time or whose
       columns changed, the reporter's grants, and the record of it all; a lock not granted
       within publish_lock_timeout rolls it all back and is refused the same way.
    Readers are never blocked and never see a mix: they read the last publish or this one. -#}
{% macro publish_marts(results=none, force=none) %}
    {% if not execute %}
        {{ return('') }}
    {% endif %}
    {% set command = flags.WHICH %}
    {% if results is not none and command not in ('build', 'run', 'test', 'retry', 'seed', 'snapshot') %}
        {{ return('') }}
    {% endif %}
    {% do ensure_publish_state() %}
    {% if results is not none %}
        {% do record_node_statuses(results) %}
        {% if command in ('seed', 'snapshot') %}
            {{ return('') }}
        {% endif %}
    {% endif %}
    {% set published = var('published_schema') %}
    {% set force = var('publish_force') if force is none else force %}

    {% set problems = publish_decision() %}
    {% if problems %}
        {% do refuse_publish(problems | length ~ ' node(s) of ml_eval not ready ('
            ~ problems[:3] | join(', ') ~ (', ...' if problems | length > 3 else '') ~ ')', warn=false) %}
        {{ return('') }}
    {% endif %}

    {#- this package's marts (models/marts/), never a root project's own folder named marts -#}
    {% set marts = [] %}
    {% for node in graph.nodes.values()
        if node.resource_type == 'model' and node.package_name == 'ml_eval' and node.fqn[1] == 'marts' %}
        {% set by_run = (node.config.meta or {}).get('publish') == 'by_run' %}
        {% do marts.append({
            'node': node,
            'name': node.alias,
            'by_run': by_run,
            'source': adapter.quote(node.schema) ~ '.' ~ adapter.quote(node.alias),
            'target': adapter.quote(published) ~ '.' ~ adapter.quote(node.alias),
        }) %}
    {% endfor %}
    {#- whole marts first, by-run marts last (the biggest writes, kept to the end) -#}
    {% set marts = (marts | rejectattr('by_run') | sort(attribute='name') | list)
        + (marts | selectattr('by_run') | sort(attribute='name') | list) %}
    {% set columns = relation_columns(marts | map(attribute='source') | list + marts | map(attribute='target') | list) %}
    {% for mart in marts if mart.by_run and ('run_uuid ' not in ((columns[mart.source] or '') ~ ', ')) %}
        {% do exceptions.raise_compiler_error('publish_marts: mart ' ~ mart.name
            ~ ' is configured meta: {publish: by_run} but has no run_uuid column') %}
    {% endfor %}

    {#- the evaluated runs published now and those this publish would publish -#}
    {% set evaluation = marts | selectattr('name', 'equalto', 'fct_run_evaluation') | first %}
    {% set counted %}
        select
            (select count(*) from {{ evaluation.source }}),
            {% if columns[evaluation.target] is none %}null{% else %}(select count(*) from {{ evaluation.target }}){% endif %}
    {% endset %}
    {% set counts = run_query(counted).rows[0] %}
    {% set evaluated_runs, published_runs = counts[0], counts[1] %}
    {% set refusal = shrink_refusal(evaluated_runs, published_runs, force) %}
    {% if refusal %}
        {% do refuse_publish(refusal) %}
        {{ return('') }}
    {% endif %}

    {#- how each mart is published: create (first publish), replace (its columns changed),
        whole (delete + insert), by run (the runs that changed) -#}
    {% set fingerprints = {} %}
    {% set state_query %}
        select mart, definition_fingerprint from {{ publish_state_relation('ml_eval_published_marts') }}
        where published_schema = {{ sql_string(published) }}
    {% endset %}
    {% for row in run_query(state_query).rows %}
        {% do fingerprints.update({row[0]: row[1]}) %}
    {% endfor %}
    {% for mart in marts %}
        {% do mart.update({'fingerprint': definition_fingerprint(mart.node)}) %}
        {% if columns[mart.target] is none %}
            {% do mart.update({'method': 'create'}) %}
        {% elif columns[mart.target] != columns[mart.source] %}
            {% do mart.update({'method': 'replace'}) %}
        {% elif mart.by_run and not flags.FULL_REFRESH and fingerprints.get(mart.name) == mart.fingerprint %}
            {% do mart.update({'method': 'by run'}) %}
        {% else %}
            {% do mart.update({'method': 'whole'}) %}
        {% endif %}
    {% endfor %}
    {% set replaced = marts | selectattr('method', 'equalto', 'replace') | list %}
    {% if replaced %}
        {% set dependents = consumer_dependents(replaced | map(attribute='target') | list) %}
        {% if dependents %}
            {% do refuse_publish((replaced | map(attribute='name') | join(', ')) ~ ' must be replaced (its columns changed)'
                ~ ' and ' ~ dependents | join(', ') ~ ' depend(s) on it in schema ' ~ published
                ~ ': drop them, build again, then create them again') %}
            {{ return('') }}
        {% endif %}
    {% endif %}

    {% set statements %}
        begin;
        set local lock_timeout = {{ sql_string(var('publish_lock_timeout')) }};
        do $publish$
        declare
            step text := {{ sql_string('schema ' ~ published) }};
        begin
            {% if marts | selectattr('method', 'equalto', 'create') | list %}
                if not exists (select 1 from pg_namespace where nspname = {{ sql_string(published) }}) then
                    create schema {{ adapter.quote(published) }};
                end if;
            {% endif %}
            {% for mart in marts %}
                step := {{ sql_string(published ~ '.' ~ mart.name) }};
                {% if mart.method in ('create', 'replace') %}
                    {{ create_published_table(mart.source, mart.target, replace=mart.method == 'replace',
                        index_name=mart.name ~ '__published_runs' if mart.by_run else none) }}
                {% endif %}
                {% if mart.method == 'by run' %}
                    {{ refresh_mart_by_run(mart.source, mart.target, fingerprint_key(published, mart.name)) }}
                {% else %}
                    {{ refresh_whole_mart(mart.source, mart.target) }}
                    {% if mart.by_run %}
                        {{ record_run_fingerprints(fingerprint_key(published, mart.name),
                            relation_of('int_runs_evaluated'), whole=true) }}
                    {% endif %}
                {% endif %}
                {% if mart.method in ('create', 'replace') %}
                    analyze {{ mart.target }};
                {% endif %}
                insert into {{ publish_state_relation('ml_eval_published_marts') }} as state
                    (published_schema, mart, publish_method, definition_fingerprint, invocation_id, published_at)
                values ({{ sql_string(published) }}, {{ sql_string(mart.name) }}, {{ sql_string(mart.method) }},
                    {{ sql_string(mart.fingerprint) }}, {{ sql_string(invocation_id) }}, now())
                on conflict (published_schema, mart) do update set
                    publish_method = excluded.publish_method,
                    definition_fingerprint = excluded.definition_fingerprint,
                    invocation_id = excluded.invocation_id,
                    published_at = excluded.published_at;
            {% endfor %}
            step := {{ sql_string('the grants on schema ' ~ published) }};
            {{ grant_published_to_readers(published, marts | map(attribute='target') | list) }}
            {{ publish_attempt_row(true, 'published ' ~ marts | length ~ ' marts', evaluated_runs) }}
        exception when lock_not_available then
            {{ publish_attempt_row(false,
                "'not published: ' || step || " ~ sql_string(
                    ' stayed locked by another session longer than publish_lock_timeout ('
                    ~ var('publish_lock_timeout') ~ '); the published marts in schema ' ~ published ~ ' are unchanged'),
                message_sql=true) }}
        end
        $publish$;
        commit;
    {% endset %}
    {% do run_query(statements) %}
    {% set outcome_query %}
        select is_published, message from {{ publish_state_relation('ml_eval_publishes') }}
        where invocation_id = {{ sql_string(invocation_id) }} and published_schema = {{ sql_string(published) }}
        order by attempted_at desc
        limit 1
    {% endset %}
    {% set outcome = run_query(outcome_query).rows[0] %}
    {% if not outcome[0] %}
        {% do exceptions.warn(outcome[1]) %}
        {{ return('') }}
    {% endif %}
    {% set how = [] %}
    {% for method in ('create', 'replace', 'whole', 'by run') %}
        {% set names = marts | selectattr('method', 'equalto', method) | map(attribute='name') | list %}
        {% if names %}
            {% do how.append(method ~ ': ' ~ names | join(', ')) %}
        {% endif %}
    {% endfor %}
    {% do log("published " ~ marts | length ~ " marts to schema " ~ published ~ " (" ~ how | join('; ') ~ ")", info=true) %}
{% endmacro %}
