{#- The schema of the publish state tables (ensure_publish_state): `audit`, the schema the
    package's data tests store their failing rows in (dbt_project.yml, data_tests), which the
    transformer owns and `ml-eval roles` creates; neither a reader of `published` nor a
    schema swap can touch it. -#}
{% macro publish_state_schema() %}
    {{- return('audit') -}}
{% endmacro %}
