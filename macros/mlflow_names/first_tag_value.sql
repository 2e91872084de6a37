{#- In a query grouped by run over stg_mlflow__run_tags: the value of the first of `keys` (in
    order of preference) the run has, null when it has none of them. -#}
{% macro first_tag_value(keys) -%}
    {%- if keys -%}
        coalesce(
            {%- for key in keys %}
                max(tag_value) filter (where tag_key = {{ sql_string(key) }}){% if not loop.last %},{% endif %}
            {%- endfor %}
        )
    {%- else -%}
        cast(null as {{ dbt.type_string() }})
    {%- endif -%}
{%- endmacro %}
