{#- On-run-start of a build or run: the state tables exist before any model runs
    (ensure_publish_state), among them ml_eval_run_fingerprints, which the run-keyed models'
    hooks read and write (run_is_new, delete_stale_runs, record_built_runs). -#}
{% macro ensure_run_fingerprints() %}
    {% if execute and flags.WHICH in ('build', 'run', 'retry') %}
        {% do ensure_publish_state() %}
    {% endif %}
    {{ return('') }}
{% endmacro %}
