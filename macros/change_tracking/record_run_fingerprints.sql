{#- Statements that record, for the relation `key` (fingerprint_key), the input fingerprint
    of every run of `runs_relation` (a relation with run_uuid and input_fingerprint: the runs
    the relation now holds, built from those inputs), and forget the runs no longer listed.
    `whole`: the relation was rebuilt from scratch, its state is rewritten. A run whose
    recorded fingerprint is current is not written again. -#}
{% macro record_run_fingerprints(key, runs_relation, whole=false) -%}
    {%- set state = publish_state_relation('ml_eval_run_fingerprints') -%}
    {%- if whole %}
        delete from {{ state }} where built_relation = {{ key }};
    {%- else %}
        delete from {{ state }} as built
        where
            built.built_relation = {{ key }}
            and built.run_uuid not in (select listed.run_uuid from {{ runs_relation }} as listed);
    {%- endif %}
    insert into {{ state }} as built (built_relation, run_uuid, input_fingerprint)
    select {{ key }}, listed.run_uuid, listed.input_fingerprint
    from {{ runs_relation }} as listed
    {%- if not whole %}
        where listed.run_uuid in ({{ runs_to_build(key, runs_relation) }})
    {%- endif %}
    on conflict (built_relation, run_uuid) do update set input_fingerprint = excluded.input_fingerprint;
{%- endmacro %}
