{#- The quoted name of a publish state table (see ensure_publish_state). -#}
{% macro publish_state_relation(table_name) %}
    {{- return(adapter.quote(publish_state_schema()) ~ '.' ~ adapter.quote(table_name)) -}}
{% endmacro %}
