{#- PL/pgSQL statements that bring `target_table`, the published copy of a mart configured
    `meta: {publish: by_run}`, up to date with the mart `source_table` one run at a time.
    Such a mart holds the rows of the evaluated runs (int_runs_evaluated), and a run's rows do
    not change once it is evaluated (the producer writes a run's batch once); what could
    change them (the mart's SQL, a model or seed it reads) changes the definition
    fingerprint, and then publish_marts refreshes the mart whole. The cost is in proportion
    to the runs that changed. -#}
{% macro refresh_mart_by_run(source_table, target_table) %}
    {%- set evaluated_runs -%}
        select evaluated.run_uuid from {{ relation_of('int_runs_evaluated') }} as evaluated
    {%- endset -%}
    delete from {{ target_table }}
    where {{ run_uuid_in(
        'select held.run_uuid from (' ~ distinct_run_uuids(target_table, many_rows_per_run=true) ~ ') as held'
        ~ ' where not exists (select 1 from (' ~ evaluated_runs ~ ') as evaluated'
        ~ ' where evaluated.run_uuid = held.run_uuid)'
    ) }};
    insert into {{ target_table }}
    select * from {{ source_table }}
    where {{ run_uuid_in(
        'select evaluated.run_uuid from (' ~ evaluated_runs ~ ') as evaluated'
        ~ ' where not exists (select 1 from ' ~ target_table ~ ' as held'
        ~ ' where held.run_uuid = evaluated.run_uuid)'
    ) }};
{% endmacro %}
