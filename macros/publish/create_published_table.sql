{#- PL/pgSQL statements that create `target_table` as a copy of the mart `source_table`'s
    definition (constraints, indexes, comments: persist_docs), empty, replacing it first when
    `replace` (its columns changed: consumer_dependents checked that nothing depends on it).
    A mart published by run gets an index on run_uuid (named `index_name`) that makes its
    runs cheap to list and delete. -#}
{% macro create_published_table(source_table, target_table, replace=false, index_name=none) %}
    {% if replace %}
        drop table {{ target_table }};
    {% endif %}
    create table {{ target_table }} (like {{ source_table }} including all);
    {% if index_name %}
        create index {{ adapter.quote(index_name) }} on {{ target_table }} (run_uuid);
    {% endif %}
{% endmacro %}
