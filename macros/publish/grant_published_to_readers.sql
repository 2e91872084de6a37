{#- PL/pgSQL statements that let the reporting role (var reporter_role), when it exists, use
    the published schema and read `tables` (quoted names): granted only where it cannot yet,
    so a publish of DML only changes no catalog row. -#}
{% macro grant_published_to_readers(published, tables) %}
    {% set role = var('reporter_role') %}
    if exists (select 1 from pg_roles where rolname = {{ sql_string(role) }}) then
        if not has_schema_privilege({{ sql_string(role) }}, {{ sql_string(published) }}, 'usage') then
            execute {{ sql_string('grant usage on schema ' ~ adapter.quote(published) ~ ' to ' ~ adapter.quote(role)) }};
        end if;
        {% for table in tables %}
            if not has_table_privilege({{ sql_string(role) }}, {{ sql_string(table) }}, 'select') then
                execute {{ sql_string('grant select on ' ~ table ~ ' to ' ~ adapter.quote(role)) }};
            end if;
        {% endfor %}
    end if;
{% endmacro %}
