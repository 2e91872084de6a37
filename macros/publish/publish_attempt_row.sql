{#- The insert of one row into ml_eval_publishes (see record_publish_attempt); `message` is
    SQL (a string literal or an expression) when `message_sql`. -#}
{% macro publish_attempt_row(is_published, message, evaluated_runs=none, message_sql=false) %}
    insert into {{ publish_state_relation('ml_eval_publishes') }}
        (invocation_id, published_schema, is_published, message, evaluated_runs)
    values (
        {{ sql_string(invocation_id) }},
        {{ sql_string(var('published_schema')) }},
        {{ 'true' if is_published else 'false' }},
        {{ message if message_sql else sql_string(message) }},
        {{ 'null' if evaluated_runs is none else evaluated_runs }}
    );
{% endmacro %}
