{#- Seed loading checks every value against its declared column type before inserting,
    so a bad value is reported with its table, column and line instead of PostgreSQL's
    anonymous "invalid input syntax". -#}
{% macro postgres__load_csv_rows(model, agate_table) %}
    {% do validate_seed_values(model, agate_table) %}
    {{ return(default__load_csv_rows(model, agate_table)) }}
{% endmacro %}

{% macro validate_seed_values(model, agate_table) %}
    {% set patterns = {
        'integer': '^[+-]?[0-9]+$',
        'float': '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$',
    } %}
    {% set column_types = model['config'].get('column_types', {}) %}
    {% for column_name in agate_table.column_names %}
        {% set declared = (column_types.get(column_name) or '') | lower %}
        {% set kind = 'integer' if declared in ('int', 'integer', 'bigint', 'smallint')
            else 'float' if declared in ('float', 'double precision', 'real', 'numeric')
            else none %}
        {% if kind is not none %}
            {% for row in agate_table.rows %}
                {% set value = row[column_name] %}
                {% if value is not none and not modules.re.match(patterns[kind], (value | string) | trim) %}
                    {% do exceptions.raise_compiler_error(
                        "seed " ~ model['name'] ~ ": column " ~ column_name ~ " line " ~ (loop.index + 1)
                        ~ " holds '" ~ value ~ "', which is not " ~ ('an integer' if kind == 'integer' else 'a number')
                    ) %}
                {% endif %}
            {% endfor %}
        {% endif %}
    {% endfor %}
{% endmacro %}

{#- on-run-end: a seed of this package that failed to load, or that any of its tests failed
    on, is dropped (with the staging views over it), so no later run can read data that did
    not pass. A root project's own seeds are left alone. -#}
{% macro quarantine_failed_seeds(results) %}
    {% if execute %}
        {% set failed_seeds = {} %}
        {% for result in results if result.status in ('error', 'fail') %}
            {% set node = result.node %}
            {% if node.resource_type == 'seed' and node.package_name == 'ml_eval' %}
                {% do failed_seeds.update({node.unique_id: node.name ~ ' did not load'}) %}
            {% elif node.resource_type == 'test' %}
                {#- only tests of the seed itself: a bad prediction does not make a seed bad -#}
                {% if node.attached_node and node.attached_node.startswith('seed.ml_eval.') %}
                    {% do failed_seeds.update({node.attached_node: node.name ~ ' failed'}) %}
                {% endif %}
            {% endif %}
        {% endfor %}
        {% for unique_id, reason in failed_seeds.items() %}
            {% set seed = graph.nodes[unique_id] %}
            {% set relation = adapter.get_relation(seed.database, seed.schema, seed.alias) %}
            {% if relation is not none %}
                {% do log("quarantined seed " ~ relation ~ " (" ~ reason ~ "): dropped with its dependent views", info=true) %}
                {% do adapter.drop_relation(relation) %}
            {% endif %}
        {% endfor %}
    {% endif %}
{% endmacro %}
