{#- Why publishing `evaluated_runs` evaluated runs (the rows of fct_run_evaluation in marts)
    would be an accident, or none: the published mart holds some, and the new one would hold
    none, or fewer by more than the fraction var publish_max_shrink. Nothing published yet
    (the first publish) is never refused; `force` (var publish_force) overrides. -#}
{% macro shrink_refusal(evaluated_runs, published_runs, force) %}
    {% if force or published_runs is none or published_runs == 0 %}
        {{ return(none) }}
    {% endif %}
    {% set max_shrink = var('publish_max_shrink') | float %}
    {% if evaluated_runs == 0 or evaluated_runs < published_runs * (1 - max_shrink) %}
        {{ return('evaluated runs would drop from ' ~ published_runs ~ ' to ' ~ evaluated_runs
            ~ ' (publish_max_shrink: ' ~ max_shrink ~ '); set var publish_force: true to publish them') }}
    {% endif %}
    {{ return(none) }}
{% endmacro %}
