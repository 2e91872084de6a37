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
            and not exists (
                select 1 from {{ runs_relation }} as listed
                where listed.run_uuid = built.run_uuid
            );
    {%- endif %}
    insert into {{ state }} as built (built_relation, run_uuid, input_fingerprint)
    select {{ key }}, listed.run_uuid, listed.input_fingerprint
    from {{ runs_relation }} as listed
    {%- if not whole %}
        where not exists (
            select 1 from {{ state }} as recorded
            where
                recorded.built_relation = {{ key }}
                and recorded.run_uuid = listed.run_uuid
                and recorded.input_fingerprint = listed.input_fingerprint
        )
    {%- endif %}
    on conflict (built_relation, run_uuid) do update set input_fingerprint = excluded.input_fingerprint;
{%- endmacro %}
