{#- Composite primary keys: no two rows share the same values of all the listed columns,
    and none of them is null. `if_present` lists key columns that only some versions of a
    source have (MLflow 3.x's `workspace`): they join the key when the relation has them. -#}
{% test unique_combination_of_columns(model, combination_of_columns, if_present=[]) %}
    {%- set key = combination_of_columns | list -%}
    {%- if if_present and execute -%}
        {%- set present = adapter.get_columns_in_relation(model) | map(attribute='name') | map('lower') | list -%}
        {%- for column in if_present if column | lower in present -%}
            {%- do key.append(column) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set columns_csv = key | join(', ') -%}

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
        {%- for column in key %}
            or {{ column }} is null
        {%- endfor %}
)

select * from offending
{% endtest %}
