{#- A query of the run_uuids of `runs_relation` (a relation with run_uuid and
    input_fingerprint) that the relation `key` does not hold built from their current input
    fingerprint: new runs and runs whose inputs changed. Usually few; the list is hashed. -#}
{% macro runs_to_build(key, runs_relation) -%}
    select listed.run_uuid
    from {{ runs_relation }} as listed
    where (listed.run_uuid, listed.input_fingerprint) not in (
        select built.run_uuid, built.input_fingerprint
        from {{ publish_state_relation('ml_eval_run_fingerprints') }} as built
        where built.built_relation = {{ key }}
    )
{%- endmacro %}
