{#- Custom schemas are used as written (dataset, staging, marts, audit), not prefixed with
    the target schema: the producer and MLflow write to fixed, documented schemas, and
    isolation between environments comes from the database (PGDATABASE). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
