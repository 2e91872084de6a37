{#- The history of checks: every test result of this invocation (this package's and a root
    project's alike), appended to audit.ml_eval_test_results, so a failing gate or test can be
    followed over builds. One insert per invocation; the table is made when missing. -#}
{% macro record_test_results(results) %}
    {% if not execute %}{% do return('') %}{% endif %}
    {% set rows = [] %}
    {% for result in results if result.node.resource_type == 'test' %}
        {% set node = result.node %}
        {% set failures = result.failures if result.failures is not none else 'null' %}
        {% do rows.append('(' ~ sql_string(node.unique_id) ~ ', ' ~ sql_string(node.name)
            ~ ', ' ~ sql_string(node.package_name) ~ ', ' ~ sql_string(node.attached_node or '')
            ~ ', ' ~ sql_string(node.config.severity | lower) ~ ', ' ~ sql_string(result.status | string)
            ~ ', ' ~ failures ~ ', ' ~ sql_string((result.message or '') | string)
            ~ ', ' ~ ('true' if 'quality_gate' in node.tags else 'false') ~ ')') %}
    {% endfor %}
    {% set statement %}
        begin;
        create table if not exists {{ publish_state_relation('ml_eval_test_results') }} (
            invocation_id text not null,
            unique_id text not null,
            test_name text not null,
            package_name text not null,
            attached_node text,
            severity text not null,
            status text not null,
            failures bigint,
            message text,
            is_quality_gate boolean not null,
            run_started_at timestamptz not null,
            recorded_at timestamptz not null default clock_timestamp(),
            primary key (invocation_id, unique_id)
        );
        {% if rows %}
            insert into {{ publish_state_relation('ml_eval_test_results') }} (
                invocation_id, run_started_at, unique_id, test_name, package_name, attached_node,
                severity, status, failures, message, is_quality_gate
            )
            select
                {{ sql_string(invocation_id) }},
                cast({{ sql_string(run_started_at.isoformat()) }} as timestamptz),
                ran.unique_id, ran.test_name, ran.package_name, nullif(ran.attached_node, ''),
                ran.severity, ran.status, ran.failures, nullif(ran.message, ''), ran.is_quality_gate
            from (values {{ rows | join(', ') }}) as ran (
                unique_id, test_name, package_name, attached_node, severity, status, failures,
                message, is_quality_gate
            );
        {% endif %}
        commit;
    {% endset %}
    {% do run_query(statement) %}
{% endmacro %}
