{#- numerator / denominator as a double, and 0 when the denominator is 0
    (scikit-learn's zero_division=0). -#}
{% macro safe_ratio(numerator, denominator) -%}
    coalesce(
        cast({{ numerator }} as {{ dbt.type_float() }})
        / nullif(cast({{ denominator }} as {{ dbt.type_float() }}), 0),
        0
    )
{%- endmacro %}
