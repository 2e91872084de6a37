{#- numerator / denominator as a double, and 0 when the denominator is 0
    (scikit-learn's zero_division=0). -#}
{% macro safe_ratio(numerator, denominator) -%}
    coalesce(
        cast({{ numerator }} as {{ dbt.type_float() }})
        / nullif(cast({{ denominator }} as {{ dbt.type_float() }}), 0),
        0
    )
{%- endmacro %}

{#- A value MLflow logged agrees with the computed one: equal within var('metric_tolerance')
    (dbt_project.yml), or both undefined (a NaN logged, a null computed). Only for a metric
    the run logged: one it did not log is not compared at all. -#}
{% macro agrees_with_logged(computed, logged) -%}
    coalesce(
        abs({{ computed }} - {{ logged }}) <= {{ var('metric_tolerance') }},
        {{ computed }} is null and {{ logged }} is null
    )
{%- endmacro %}

{#- Seconds between two timestamps, as a double. -#}
{% macro duration_seconds(start_column, end_column) -%}
    {{ dbt.datediff(start_column, end_column, 'millisecond') }} / 1000.0
{%- endmacro %}
