{#- One line per failing quality gate (a failing row of the tests tagged quality_gate, stored
    in audit by store_failures), naming the gate, its severity and the model, e.g.
    `quality gate metric_floor (warn) for wine-classifier: champion v3 f1_macro 0.31, floor 0.5`. -#}
{% macro report_quality_gates(results) %}
    {% if not execute %}{% do return('') %}{% endif %}
    {% for result in results
        if result.node.resource_type == 'test' and 'quality_gate' in result.node.tags
        and (result.status | string) in ('fail', 'warn') and result.node.relation_name %}
        {% set failing = run_query('select message from ' ~ result.node.relation_name ~ ' order by message') %}
        {% for row in failing.rows %}
            {% do log(row[0], info=true) %}
        {% endfor %}
    {% endfor %}
{% endmacro %}
