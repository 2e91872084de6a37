{#- Records in ml_eval_publishes that the marts were not published and why, then says so in
    one line, `not published: <why>; ...`: a warning when `warn` (dbt --warn-error makes it
    fail the invocation), else an info line (the invocation already failed, or built only
    part of the package). -#}
{% macro refuse_publish(reason, warn=true) %}
    {% set published = var('published_schema') %}
    {% set message = 'not published: ' ~ reason ~ '; the published marts in schema ' ~ published ~ ' are unchanged' %}
    {% do record_publish_attempt(false, message) %}
    {% if warn %}
        {% do exceptions.warn(message) %}
    {% else %}
        {% do log(message, info=true) %}
    {% endif %}
{% endmacro %}
