{#- Write-audit-publish. dbt builds and tests the marts in their build schema (`marts`);
    consumers read copies in the published schema (`published`, var published_schema),
    which changes only at the end of an invocation in which every mart was built and
    every node passed. The copy and the swap run in one transaction, so readers see the
    old marts or the new ones, never a mix; a failing build leaves the published marts
    as they were. -#}
{% macro publish_marts(results) %}
    {% if not execute or flags.WHICH not in ('build', 'run') %}
        {{ return('') }}
    {% endif %}
    {% set published = var('published_schema') %}
    {#- this package's marts (models/marts/), never a root project's own folder named marts -#}
    {% set marts = [] %}
    {% for node in graph.nodes.values()
        if node.resource_type == 'model' and node.package_name == 'ml_eval'
        and node.fqn[1] == 'marts' and node.config.enabled %}
        {% do marts.append(node) %}
    {% endfor %}
    {#- only this package's nodes can hold the publish back: a root project's failing test or
        model is that project's business -#}
    {% set succeeded = [] %}
    {% set problems = [] %}
    {% for result in results if result.node.package_name == 'ml_eval' %}
        {% if result.status in ('error', 'fail', 'runtime error', 'warn') and flags.WARN_ERROR
            or result.status in ('error', 'fail', 'runtime error') %}
            {% do problems.append(result.node.name) %}
        {% elif result.node.resource_type == 'model' %}
            {% do succeeded.append(result.node.unique_id) %}
        {% endif %}
    {% endfor %}
    {% set missing = marts | rejectattr('unique_id', 'in', succeeded) | map(attribute='name') | list %}
    {% if problems %}
        {% do log("not published: " ~ problems | length ~ " node(s) failed (" ~ problems[:3] | join(', ')
            ~ "); the published marts in schema " ~ published ~ " are unchanged", info=true) %}
        {{ return('') }}
    {% elif missing %}
        {% do log("not published: this invocation did not build every mart (missing "
            ~ missing[:3] | join(', ') ~ "); the published marts are unchanged", info=true) %}
        {{ return('') }}
    {% endif %}
    {% set next_schema = published ~ '__next' %}
    {% set whole = [] %}
    {% set by_run = [] %}
    {% for node in marts %}
        {% do (by_run if (node.config.meta or {}).get('publish') == 'by_run' else whole).append(node) %}
    {% endfor %}
    {% set statements %}
        begin;
        drop schema if exists {{ adapter.quote(next_schema) }} cascade;
        create schema {{ adapter.quote(next_schema) }};
        {% for node in whole %}
            {%- set source_table = adapter.quote(node.schema) ~ '.' ~ adapter.quote(node.alias) -%}
            {%- set target_table = adapter.quote(next_schema) ~ '.' ~ adapter.quote(node.alias) %}
            {{ copy_whole(source_table, target_table) }}
        {% endfor %}
        {#- last, so that the published copies they move are locked for the least time -#}
        {% for node in by_run %}
            {%- set source_table = adapter.quote(node.schema) ~ '.' ~ adapter.quote(node.alias) -%}
            {%- set published_table = adapter.quote(published) ~ '.' ~ adapter.quote(node.alias) -%}
            {%- set target_table = adapter.quote(next_schema) ~ '.' ~ adapter.quote(node.alias) -%}
            {%- set runs_index = adapter.quote(node.alias ~ '__published_runs') -%}
            {%- set fingerprint = definition_fingerprint(node) %}
            {% if not flags.FULL_REFRESH and same_columns(source_table, published_table)
                and published_fingerprint(published, node.alias ~ '__published_runs') == fingerprint %}
                -- run by run: the published copy moves over (no rows are copied), loses the
                -- runs no longer evaluated and gains the runs evaluated since
                alter table {{ published_table }} set schema {{ adapter.quote(next_schema) }};
                {{ publish_runs(source_table, target_table) }}
            {% else %}
                -- whole: first publish, full refresh, or the mart's definition changed
                {{ copy_whole(source_table, target_table) }}
                create index {{ runs_index }} on {{ target_table }} (run_uuid);
                analyze {{ target_table }};
            {% endif %}
            -- what the copy was made from: the next publish copies it whole if that changed
            comment on index {{ adapter.quote(next_schema) }}.{{ runs_index }} is {{ sql_string(fingerprint) }};
        {% endfor %}
        drop schema if exists {{ adapter.quote(published) }} cascade;
        alter schema {{ adapter.quote(next_schema) }} rename to {{ adapter.quote(published) }};
        {{ grant_published_to_readers(published) }}
        commit;
    {% endset %}
    {% do run_query(statements) %}
    {% do log("published " ~ marts | length ~ " marts to schema " ~ published, info=true) %}
{% endmacro %}

{#- A copy of the mart `source_table` as `target_table`, every row, keeping the mart's
    constraints, indexes and comments (persist_docs). -#}
{% macro copy_whole(source_table, target_table) %}
    create table {{ target_table }} (like {{ source_table }} including all);
    insert into {{ target_table }} select * from {{ source_table }};
{% endmacro %}

{#- Bring `target_table`, the published copy of a mart configured `meta: {publish: by_run}`,
    up to date with the mart `source_table` one run at a time. Such a mart holds the rows of
    the evaluated runs (int_runs_evaluated), and a run's rows do not change once
    it is evaluated (the producer writes a run's batch once); what could change them (the
    mart's SQL, a model or seed it reads) changes the definition fingerprint, and then
    publish_marts copies the mart whole. The cost is in proportion to the runs that changed. -#}
{% macro publish_runs(source_table, target_table) %}
    {%- set evaluated_runs -%}
        select evaluated.run_uuid from {{ relation_of('int_runs_evaluated') }} as evaluated
    {%- endset -%}
    delete from {{ target_table }}
    where {{ run_uuid_in(
        'select held.run_uuid from (' ~ distinct_run_uuids(target_table, many_rows_per_run=true) ~ ') as held'
        ~ ' where not exists (select 1 from (' ~ evaluated_runs ~ ') as evaluated'
        ~ ' where evaluated.run_uuid = held.run_uuid)'
    ) }};
    insert into {{ target_table }}
    select * from {{ source_table }}
    where {{ run_uuid_in(
        'select evaluated.run_uuid from (' ~ evaluated_runs ~ ') as evaluated'
        ~ ' where not exists (select 1 from ' ~ target_table ~ ' as held'
        ~ ' where held.run_uuid = evaluated.run_uuid)'
    ) }};
{% endmacro %}

{#- What a model's rows are made from: an md5 over the checksums of its SQL and of every
    model, seed and snapshot upstream of it (their SQL, or a seed's file). -#}
{% macro definition_fingerprint(node) %}
    {% set found = {} %}
    {% do collect_checksums(node.unique_id, found) %}
    {% set parts = [] %}
    {% for unique_id in found | sort %}
        {% do parts.append(unique_id ~ '=' ~ found[unique_id]) %}
    {% endfor %}
    {{ return(local_md5(parts | join(','))) }}
{% endmacro %}

{#- Adds to `found` (unique_id -> checksum) the node and every node upstream of it. -#}
{% macro collect_checksums(unique_id, found) %}
    {% set node = graph.nodes.get(unique_id) %}
    {% if node is not none and unique_id not in found %}
        {% do found.update({unique_id: node.checksum.checksum}) %}
        {% for parent in node.depends_on.nodes %}
            {% do collect_checksums(parent, found) %}
        {% endfor %}
    {% endif %}
{% endmacro %}

{#- The fingerprint stored on an index of the published schema (see publish_marts), or none. -#}
{% macro published_fingerprint(schema, index_name) %}
    {% set query %}
        select obj_description(to_regclass({{ sql_string(adapter.quote(schema) ~ '.' ~ adapter.quote(index_name)) }}), 'pg_class')
    {% endset %}
    {{ return(run_query(query).columns[0].values()[0]) }}
{% endmacro %}

{#- Whether two relations have the same columns, in the same order, of the same types (false
    when either does not exist). -#}
{% macro same_columns(left_relation, right_relation) %}
    {% if not execute %}
        {{ return(false) }}
    {% endif %}
    {% set query %}
        select coalesce(
            (
                select array_agg(attname || ' ' || format_type(atttypid, atttypmod) order by attnum)
                from pg_attribute
                where attrelid = to_regclass({{ sql_string(left_relation) }}) and attnum > 0 and not attisdropped
            ) = (
                select array_agg(attname || ' ' || format_type(atttypid, atttypmod) order by attnum)
                from pg_attribute
                where attrelid = to_regclass({{ sql_string(right_relation) }}) and attnum > 0 and not attisdropped
            ),
            false
        )
    {% endset %}
    {{ return(run_query(query).columns[0].values()[0]) }}
{% endmacro %}

{#- The reporting role (var reporter_role) may read the published marts, if it exists. -#}
{% macro grant_published_to_readers(published) %}
    {% set role = var('reporter_role') %}
    do $grant$
    begin
        if exists (select 1 from pg_roles where rolname = {{ sql_string(role) }}) then
            execute 'grant usage on schema {{ adapter.quote(published) }} to {{ adapter.quote(role) }}';
            execute 'grant select on all tables in schema {{ adapter.quote(published) }} to {{ adapter.quote(role) }}';
        end if;
    end
    $grant$;
{% endmacro %}

{#- A SQL string literal, quotes doubled. -#}
{% macro sql_string(text) -%}
    '{{ text | replace("'", "''") }}'
{%- endmacro %}
