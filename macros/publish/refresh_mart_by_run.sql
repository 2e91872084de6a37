{#- PL/pgSQL statements that bring `target_table`, the published copy of a mart configured
    `meta: {publish: by_run}`, up to date with the mart `source_table` one run at a time.
    Such a mart holds the rows of the evaluated runs (int_runs_evaluated). A run is copied
    again when its inputs changed since it was published (its input fingerprint differs
    from the one recorded for the published copy, `key`, in ml_eval_run_fingerprints: its
    predictions, probabilities, dataset or metrics changed), so the copy never keeps a row
    the mart no longer has. What could change every run (the mart's SQL, a model or seed it
    reads) changes the definition fingerprint, and then publish_marts refreshes the mart
    whole. The cost is in proportion to the runs that changed. -#}
{% macro refresh_mart_by_run(source_table, target_table, key) %}
    {%- set evaluated = relation_of('int_runs_evaluated') -%}
    delete from {{ target_table }}
    where {{ run_uuid_in(
        'select held.run_uuid from (' ~ distinct_run_uuids(target_table, many_rows_per_run=true) ~ ') as held'
        ~ ' where held.run_uuid not in (' ~ runs_built_from_current_inputs(key, evaluated) ~ ')'
    ) }};
    insert into {{ target_table }}
    select * from {{ source_table }}
    where {{ run_uuid_in(runs_to_build(key, evaluated)) }};
    {{ record_run_fingerprints(key, evaluated) }}
{% endmacro %}
