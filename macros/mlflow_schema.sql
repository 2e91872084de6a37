{#- MLflow's schema changes between releases (3.x adds `workspace` to the registry keys and
    `step` to inputs). Staging selects such a column when the source has it and a documented
    default when it does not, so one project reads both MLflow 2.22 and 3.17 tables. -#}
{% macro column_or_default(relation, column_name, default_sql) %}
    {%- if execute -%}
        {%- set present = adapter.get_columns_in_relation(relation)
            | map(attribute='name') | map('lower') | list -%}
        {%- if column_name | lower in present -%}
            {{ column_name }}
        {%- else -%}
            {{ default_sql }}
        {%- endif -%}
    {%- else -%}
        {{ column_name }}
    {%- endif -%}
{% endmacro %}

{#- MLflow stores instants as epoch milliseconds; marts use timestamps (UTC). -#}
{% macro epoch_ms_to_timestamp(column_name) %}
    {{- return(adapter.dispatch('epoch_ms_to_timestamp', 'ml_eval')(column_name)) -}}
{% endmacro %}

{% macro default__epoch_ms_to_timestamp(column_name) -%}
    {{ dbt.dateadd('millisecond', column_name, "cast('1970-01-01' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}

{% macro postgres__epoch_ms_to_timestamp(column_name) -%}
    to_timestamp({{ column_name }} / 1000.0)
{%- endmacro %}

{#- The registry's `workspace` (MLflow 3.x), or 'default' where the table predates it. -#}
{% macro mlflow_workspace(table_name) -%}
    {{ column_or_default(source('mlflow', table_name), 'workspace', "cast('default' as varchar)") }}
{%- endmacro %}
