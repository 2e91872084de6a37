{#- A condition: the relation `key` (fingerprint_key) holds the run `run_uuid_sql` built from
    the run's current input fingerprint (int_runs_classified). False for a run it never built,
    one whose inputs changed since, and one no longer in MLflow. -#}
{% macro built_from_current_inputs(key, run_uuid_sql) -%}
    exists (
        select 1
        from {{ publish_state_relation('ml_eval_run_fingerprints') }} as built
        inner join {{ relation_of('int_runs_classified') }} as current_runs
            on
                built.run_uuid = current_runs.run_uuid
                and built.input_fingerprint = current_runs.input_fingerprint
        where built.built_relation = {{ key }} and built.run_uuid = {{ run_uuid_sql }}
    )
{%- endmacro %}
