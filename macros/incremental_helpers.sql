{#- The evaluation marts are built run by run: each of their incremental models is keyed by
    run. An incremental build first deletes the rows of runs that must go (`delete_stale_runs`,
    a pre-hook): runs no longer listed, and runs whose inputs changed since the model built
    them; then inserts the rows of the runs it does not hold built from their current inputs
    (`run_is_new`, `where_run_is_new`); then records which inputs it built each run from
    (`record_built_runs`, a post-hook in the same transaction). A run's inputs are its input
    fingerprint (int_runs_classified: the versions the change tracking gives its predictions,
    probabilities and dataset, and a digest of its MLflow metrics), kept per model in the
    state table ml_eval_run_fingerprints (macros/change_tracking/). Every step costs in
    proportion to the runs that change, through indexes on run_uuid.
    `dbt run --full-refresh` (`ml-eval build --full-refresh`) rebuilds them from scratch. -#}


{#- The distinct run_uuids of `relation`, as a query. With `many_rows_per_run` (a relation
    of millions of rows for thousands of runs, like the published fct_predictions), on PostgreSQL a loose
    index scan: one descent of the relation's run_uuid index per run, not a scan of every
    row. A relation of a few rows per run is cheaper to read whole. -#}
{% macro distinct_run_uuids(relation, many_rows_per_run=false) %}
    {%- if many_rows_per_run -%}
        {{- return(adapter.dispatch('distinct_run_uuids', 'ml_eval')(relation)) -}}
    {%- else -%}
        {{- return(default__distinct_run_uuids(relation)) -}}
    {%- endif -%}
{% endmacro %}

{% macro default__distinct_run_uuids(relation) -%}
    select distinct run_uuid from {{ relation }}
{%- endmacro %}

{% macro postgres__distinct_run_uuids(relation) -%}
    with recursive present_runs (run_uuid) as (
        (select run_uuid from {{ relation }} order by run_uuid limit 1)
        union all
        select (
            select later.run_uuid from {{ relation }} as later
            where later.run_uuid > present_runs.run_uuid
            order by later.run_uuid
            limit 1
        )
        from present_runs
        where present_runs.run_uuid is not null
    )

    select run_uuid from present_runs where run_uuid is not null
{%- endmacro %}


{#- A condition on `run_uuid_column`: true when the incremental model does not hold the
    run built from its current inputs (a new run, or one whose inputs changed); always true
    in a full build. `runs_model`: the model whose input_fingerprint the model records
    (run_keyed_incremental's runs_model; int_runs_evaluated's are int_runs_classified's). -#}
{% macro run_is_new(run_uuid_column, runs_model='int_runs_classified') -%}
    {%- if is_incremental() -%}
        {{ run_uuid_in(
            runs_to_build(fingerprint_key(this.schema, this.identifier), relation_of(runs_model)),
            column=run_uuid_column,
        ) }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#- A where clause for a model read from `parent`, keyed by run like it: in an incremental
    build, only the rows of the parent's runs this model does not hold yet; nothing (every
    row) in a full build. -#}
{% macro where_run_is_new(parent) -%}
    {%- if is_incremental() -%}
        where {{ run_uuid_in(
            'select parent_runs.run_uuid from ('
            ~ distinct_run_uuids(parent) ~ ') as parent_runs'
            ~ ' where ' ~ run_is_new('parent_runs.run_uuid')
        ) }}
    {%- endif -%}
{%- endmacro %}


{#- run_uuid is one of the ids `run_uuids_sql` (a query) lists. On PostgreSQL the list is
    made once (an init plan) and the rows are found through the run_uuid index, whatever
    the planner guesses of the list's length; as a join of a DELETE it would also make
    PostgreSQL compute every column of the views the list reads. -#}
{% macro run_uuid_in(run_uuids_sql, column='run_uuid') %}
    {{- return(adapter.dispatch('run_uuid_in', 'ml_eval')(run_uuids_sql, column)) -}}
{% endmacro %}

{% macro default__run_uuid_in(run_uuids_sql, column='run_uuid') -%}
    {{ column }} in ({{ run_uuids_sql }})
{%- endmacro %}

{% macro postgres__run_uuid_in(run_uuids_sql, column='run_uuid') -%}
    {{ column }} = any(array({{ run_uuids_sql }}))
{%- endmacro %}


{#- Pre-hook of an incremental model keyed by run: delete the rows of every run it holds
    that the model `runs_model` (of this package; a row per run_uuid, the model's SQL refs
    it) no longer lists (a run deleted, failed, or gone from MLflow), or that it built from
    other inputs than the run's current ones (its predictions, probabilities, dataset or
    metrics changed since). Nothing in a full build. -#}
{% macro delete_stale_runs(runs_model) -%}
    {%- if is_incremental() -%}
        {%- set stale_runs -%}
            select held_runs.run_uuid
            from ({{ distinct_run_uuids(this) }}) as held_runs
            where held_runs.run_uuid not in (
                {{ runs_built_from_current_inputs(fingerprint_key(this.schema, this.identifier), relation_of(runs_model)) }}
            )
        {%- endset -%}
        delete from {{ this }} where {{ run_uuid_in(stale_runs) }}
    {%- endif -%}
{%- endmacro %}


{#- The config of a model incremental by run, for `{{ config(**run_keyed_incremental(...)) }}`:
    the model holds a row or rows per run of `runs_model` (int_runs_evaluated: the evaluated
    runs; int_runs_classified: every MLflow run), which its SQL refs. A build first deletes
    the runs `runs_model` no longer lists and the runs whose inputs changed
    (delete_stale_runs), then `append`s the rows of the runs it does not hold built from
    their current inputs (its SQL filters them with run_is_new), then records the inputs of
    every run it holds (record_built_runs, in the same transaction). A run_uuid index makes
    each step cost in proportion to the runs that change; after a full build the table is
    vacuumed and analyzed. `pre_hook`: more pre-hooks, after the deletion. -#}
{% macro run_keyed_incremental(runs_model='int_runs_evaluated', pre_hook=[]) %}
    {{- return({
        'materialized': 'incremental',
        'incremental_strategy': 'append',
        'on_schema_change': 'fail',
        'indexes': [{'columns': ['run_uuid']}],
        'pre_hook': ["{{ delete_stale_runs('" ~ runs_model ~ "') }}"] + pre_hook,
        'post_hook': [
            "{{ record_built_runs('" ~ runs_model ~ "') }}",
            {'sql': '{{ vacuum_after_full_build() }}', 'transaction': false},
        ],
    }) -}}
{% endmacro %}


{#- The relation of a model of this package (ml_eval), by name, without a ref(): for hooks,
    whose model already refs it in its SQL (a ref in a hook would add nothing to the DAG but a
    second, hidden dependency). By the package's own name, not project_name: installed in
    another dbt project, project_name is that root project's. -#}
{% macro relation_of(model_name) %}
    {%- if not execute -%}
        {{- return('') -}}
    {%- endif -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.package_name == 'ml_eval' and node.name == model_name -%}
        {{- return(node.relation_name) -}}
    {%- endfor -%}
    {{- exceptions.raise_compiler_error('relation_of: no model named ' ~ model_name) -}}
{% endmacro %}


{#- Post-hook (outside the transaction) of an incremental model: after a full build, vacuum
    and analyze it, so the next builds plan with its statistics and its run_uuid index
    answers index-only (visibility map set) without waiting for autovacuum. -#}
{% macro vacuum_after_full_build() %}
    {%- if not is_incremental() -%}
        {{- return(adapter.dispatch('vacuum_after_full_build', 'ml_eval')()) -}}
    {%- endif -%}
{% endmacro %}

{% macro default__vacuum_after_full_build() -%}
{%- endmacro %}

{% macro postgres__vacuum_after_full_build() -%}
    vacuum (analyze) {{ this }}
{%- endmacro %}


{#- Pre-hook of a model that aggregates millions of rows: this transaction's work_mem (var
    evaluation_work_mem in dbt_project.yml), so a hash aggregate of a cell per run and class
    stays in memory instead of spilling to disk under PostgreSQL's default of 4MB. -#}
{% macro set_local_work_mem() %}
    {{- return(adapter.dispatch('set_local_work_mem', 'ml_eval')()) -}}
{% endmacro %}

{% macro default__set_local_work_mem() -%}
{%- endmacro %}

{% macro postgres__set_local_work_mem() -%}
    set local work_mem = {{ sql_string(var('evaluation_work_mem')) }}
{%- endmacro %}


{#- Pre-hook of a query whose cost PostgreSQL overestimates by orders of magnitude (the run
    classification's metric digests): no JIT for this transaction. Its estimate crossed
    jit_optimize_above_cost, and compiling the plan took 0.36 s of its 0.72 s at 10,000 runs
    (EXPLAIN ANALYZE), every build. -#}
{% macro set_local_jit_off() %}
    {{- return(adapter.dispatch('set_local_jit_off', 'ml_eval')()) -}}
{% endmacro %}

{% macro default__set_local_jit_off() -%}
{%- endmacro %}

{% macro postgres__set_local_jit_off() -%}
    set local jit = off
{%- endmacro %}
