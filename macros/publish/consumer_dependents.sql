{#- The views and materialized views (as schema.name) that depend on any of the tables
    `relations` (quoted names): what `drop table` without cascade would refuse to drop. -#}
{% macro consumer_dependents(relations) %}
    {% set query %}
        select distinct dependent_schema.nspname || '.' || dependent.relname
        from pg_depend as dependency
        inner join pg_rewrite as rule on rule.oid = dependency.objid
        inner join pg_class as dependent on dependent.oid = rule.ev_class
        inner join pg_namespace as dependent_schema on dependent_schema.oid = dependent.relnamespace
        where dependency.classid = 'pg_rewrite'::regclass
            and dependency.refobjid in (
                {%- for relation in relations %}to_regclass({{ sql_string(relation) }}){{ ', ' if not loop.last }}{% endfor -%}
            )
            and dependent.oid <> dependency.refobjid
        order by 1
    {% endset %}
    {{ return(run_query(query).columns[0].values() | list) }}
{% endmacro %}
