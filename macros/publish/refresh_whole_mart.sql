{#- PL/pgSQL statements that make the published `target_table` hold every row of the mart
    `source_table`, and nothing else: DML only, so the table, its grants and what consumers
    built on it stay, readers are never blocked, and a reader's snapshot keeps the old rows. -#}
{% macro refresh_whole_mart(source_table, target_table) %}
    delete from {{ target_table }};
    insert into {{ target_table }} select * from {{ source_table }};
{% endmacro %}
