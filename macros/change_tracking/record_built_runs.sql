{#- Post-hook of a run-keyed incremental model (run_keyed_incremental), in the model's own
    transaction: the state of the run fingerprints now says which inputs the model's runs
    were built from (record_run_fingerprints over `runs_model`), rewritten after a full
    build. A build with --empty (no rows) forgets the model's state, so the next build
    builds every run again. -#}
{% macro record_built_runs(runs_model) -%}
    {%- set key = fingerprint_key(this.schema, this.identifier) -%}
    {%- if flags.EMPTY -%}
        delete from {{ publish_state_relation('ml_eval_run_fingerprints') }} where built_relation = {{ key }}
    {%- else -%}
        {{ record_run_fingerprints(key, relation_of(runs_model), whole=not is_incremental()) }}
    {%- endif -%}
{%- endmacro %}
