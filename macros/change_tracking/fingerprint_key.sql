{#- How the state of the run fingerprints names a relation built run by run: `schema.name`,
    unquoted (`marts.fct_confusion_matrix`, `published.fct_predictions`). -#}
{% macro fingerprint_key(schema, identifier) %}
    {{- return(sql_string(schema ~ '.' ~ identifier)) -}}
{% endmacro %}
