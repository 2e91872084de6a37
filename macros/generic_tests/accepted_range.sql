{#- Values must lie within [min_value, max_value]; either bound may be omitted. -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}

with

out_of_range as (
    select {{ column_name }} as value_out_of_range
    from {{ model }}
    where
        1 = 0
        {%- if min_value is not none %}
            or {{ column_name }} < {{ min_value }}
        {%- endif %}
        {%- if max_value is not none %}
            or {{ column_name }} > {{ max_value }}
        {%- endif %}
)

select * from out_of_range
{% endtest %}
