{#- dbt's persist_docs on PostgreSQL when this project is the root project, in one round trip
    and writing only what differs. dbt's own reads the relation's columns twice and rewrites
    every comment on every run (four statements for each incremental model and each table
    built, measured in dbt's log), whether or not anything changed. This one sends one
    statement: a PL/pgSQL block that comments the relation and each documented column that
    exists (matched by name, as dbt's matches them) only where the comment is not the model's
    description already (an empty description is no comment, as in dbt), then a query of the
    documented columns the relation does not have, which dbt's warning names. What it leaves
    is what comments_are_documented expects. As a package, dbt's own is used. -#}
{% macro postgres__persist_docs(relation, model, for_relation, for_columns) -%}
    {%- if relation.type not in ('table', 'view', 'materialized_view') -%}
        {#- a function, or a relation whose type dbt did not look up: dbt's own -#}
        {%- do return(dbt.default__persist_docs(relation, model, for_relation, for_columns)) -%}
    {%- endif -%}
    {%- set persist_relation = for_relation and config.persist_relation_docs() and model.description -%}
    {%- set documented = [] -%}
    {%- if for_columns and config.persist_column_docs() and model.columns -%}
        {%- for name, column in model.columns.items() -%}
            {%- do documented.append('(' ~ loop.index ~ ', ' ~ ml_eval.sql_string(name) ~ ', '
                ~ ml_eval.sql_string(column.description or '') ~ ', ' ~ ('true' if column.quote else 'false') ~ ')') -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if persist_relation or documented -%}
        {%- set relation_oid = 'to_regclass(' ~ ml_eval.sql_string(relation.include(database=false)) ~ ')' -%}
        {%- set relation_kind = 'materialized view' if relation.type == 'materialized_view' else relation.type -%}
        {%- set wanted = documented | join(', ') if documented else "(0, null::text, null::text, false)" -%}
        {%- set tag = '$ml_eval_' ~ local_md5(relation ~ '|' ~ (model.description or '') ~ '|' ~ wanted) ~ '$' -%}
        {%- call statement('persist_docs', fetch_result=true) -%}
            do {{ tag }}
            declare
                differing record;
            begin
                if {{ relation_oid }} is null then
                    raise exception 'persist_docs: there is no relation %', {{ ml_eval.sql_string(relation.include(database=false)) }};
                end if;
                {%- if persist_relation %}
                if obj_description({{ relation_oid }}, 'pg_class') is distinct from {{ ml_eval.sql_string(model.description) }} then
                    execute format(
                        'comment on {{ relation_kind }} %s is %L', {{ relation_oid }}::regclass, {{ ml_eval.sql_string(model.description) }}
                    );
                end if;
                {%- endif %}
                for differing in
                    select attribute.attname, nullif(wanted.column_comment, '') as column_comment
                    from (values {{ wanted }}) as wanted (position, column_name, column_comment, is_quoted)
                    inner join pg_attribute as attribute
                        on
                            attribute.attrelid = {{ relation_oid }}
                            and attribute.attname = wanted.column_name
                            and attribute.attnum > 0
                            and not attribute.attisdropped
                    where col_description(attribute.attrelid, attribute.attnum) is distinct from nullif(wanted.column_comment, '')
                loop
                    execute format('comment on column %s.%I is %L', {{ relation_oid }}::regclass, differing.attname, differing.column_comment);
                end loop;
            end
            {{ tag }};
            select string_agg(wanted.column_name, ', ' order by wanted.position)
            from (values {{ wanted }}) as wanted (position, column_name, column_comment, is_quoted)
            where
                wanted.column_name is not null
                and not exists (
                    select 1
                    from pg_attribute as attribute
                    where
                        attribute.attrelid = {{ relation_oid }}
                        and attribute.attnum > 0
                        and not attribute.attisdropped
                        and (
                            attribute.attname = wanted.column_name
                            or (not wanted.is_quoted and lower(attribute.attname) = lower(wanted.column_name))
                        )
                )
        {%- endcall -%}
        {%- set missing = load_result('persist_docs')['data'][0][0] -%}
        {%- if missing -%}
            {{ exceptions.warn("In relation " ~ relation.render() ~ ": The following columns are specified in the schema but are not present in the database: " ~ missing) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
