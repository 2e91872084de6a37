{#- The columns of each quoted relation name, as one string ("name type, ..." in order), or
    none for a relation that does not exist: one catalog query for them all. -#}
{% macro relation_columns(relations) %}
    {% set query %}
        select
            relation_name,
            (
                select string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' order by attnum)
                from pg_attribute
                where attrelid = to_regclass(relation_name) and attnum > 0 and not attisdropped
            )
        from unnest(array[
            {%- for relation in relations %}{{ sql_string(relation) }}{{ ', ' if not loop.last }}{% endfor -%}
        ]::text[]) as relation_name
    {% endset %}
    {% set found = {} %}
    {% for row in run_query(query).rows %}
        {% do found.update({row[0]: row[1]}) %}
    {% endfor %}
    {{ return(found) }}
{% endmacro %}
