{#- A query of the run_uuids the relation `key` (fingerprint_key) holds built from the run's
    current input fingerprint, among the runs of `runs_relation` (default int_runs_classified:
    every MLflow run). A run it never built, one whose inputs changed since, and one no
    longer listed are not among them. Used as `not in (...)`: PostgreSQL hashes the list
    once (a hashed subplan), whatever it guesses of the state table's size. -#}
{% macro runs_built_from_current_inputs(key, runs_relation=none) -%}
    select built.run_uuid
    from {{ publish_state_relation('ml_eval_run_fingerprints') }} as built
    inner join {{ runs_relation or relation_of('int_runs_classified') }} as current_runs
        on
            built.run_uuid = current_runs.run_uuid
            and built.input_fingerprint = current_runs.input_fingerprint
    where built.built_relation = {{ key }}
{%- endmacro %}
