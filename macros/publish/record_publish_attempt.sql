{#- Adds a row to ml_eval_publishes: this invocation's attempt to publish to var
    published_schema, whether it published, its message, and the evaluated runs published. -#}
{% macro record_publish_attempt(is_published, message, evaluated_runs=none) %}
    {% do run_query('begin; ' ~ publish_attempt_row(is_published, message, evaluated_runs) ~ ' commit;') %}
{% endmacro %}
