{#- Every non-null combination of `columns` in the model exists as `to_columns` in `to`
    (a foreign key over several columns, such as a tag's model version). -#}
{% test composite_relationships(model, columns, to, to_columns) %}

with

child as (
    select distinct {{ columns | join(', ') }}
    from {{ model }}
    where
        {% for column in columns -%}
            {{ column }} is not null{{ ' and ' if not loop.last }}
        {%- endfor %}
),

parent as (
    select distinct {{ to_columns | join(', ') }}
    from {{ to }}
),

orphans as (
    select child.*
    from child
    left join parent
        on
        {% for column in columns -%}
            child.{{ column }} = parent.{{ to_columns[loop.index0] }}{{ ' and ' if not loop.last }}
        {%- endfor %}
    where parent.{{ to_columns[0] }} is null
)

select * from orphans
{% endtest %}
