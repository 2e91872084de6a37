{#- Keeps the status of every node of this package this invocation ran (never a root
    project's), with the checksum of its definition, in ml_eval_node_status: the latest
    status of each node, whichever invocation ran it last (a `dbt retry` runs only some). -#}
{% macro record_node_statuses(results) %}
    {% set rows = [] %}
    {% for result in results
        if result.node.package_name == 'ml_eval'
        and result.node.resource_type in ('model', 'seed', 'snapshot', 'test') %}
        {#- a build with --empty leaves the marts without rows: nothing of it may be published -#}
        {% set status = 'empty' if flags.EMPTY else result.status | string %}
        {% do rows.append('(' ~ sql_string(result.node.unique_id) ~ ', ' ~ sql_string(result.node.resource_type)
            ~ ', ' ~ sql_string(status) ~ ', ' ~ sql_string(result.node.checksum.checksum) ~ ')') %}
    {% endfor %}
    {% if rows %}
        {% set statement %}
            begin;
            insert into {{ publish_state_relation('ml_eval_node_status') }} as recorded
                (unique_id, resource_type, status, checksum, invocation_id, recorded_at)
            select ran.unique_id, ran.resource_type, ran.status, ran.checksum, {{ sql_string(invocation_id) }}, now()
            from (values {{ rows | join(', ') }}) as ran (unique_id, resource_type, status, checksum)
            on conflict (unique_id) do update set
                resource_type = excluded.resource_type,
                status = excluded.status,
                checksum = excluded.checksum,
                invocation_id = excluded.invocation_id,
                recorded_at = excluded.recorded_at;
            commit;
        {% endset %}
        {% do run_query(statement) %}
    {% endif %}
{% endmacro %}
