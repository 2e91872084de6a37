{#- Composite primary keys: no two rows share the same values of all the listed columns,
    and none of them is null. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set columns_csv = combination_of_columns | join(', ') -%}

with

key_counts as (
    select
        {{ columns_csv }},
        count(*) as n_rows
    from {{ model }}
    group by {{ columns_csv }}
),

offending as (
    select * from key_counts
    where
        n_rows > 1
        {%- for column in combination_of_columns %}
            or {{ column }} is null
        {%- endfor %}
)

select * from offending
{% endtest %}
