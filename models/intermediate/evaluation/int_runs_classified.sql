-- Which runs are evaluated: finished, not deleted, with predictions, on a declared dataset
-- (run_datasets). The others are kept with the reason they were left out, so they are
-- counted rather than dropped.
-- Each run's input fingerprint says what its evaluation is made of: the versions the change
-- tracking (src/ml_eval/changes.py) gave its predictions, probabilities and dataset, and a
-- digest of the metric values MLflow holds for it. A run-keyed mart evaluates a run again,
-- and the publish copies it again, when its fingerprint differs from the one the mart (or
-- the published copy) was built from (macros/incremental_helpers.sql).
-- A table of a row per run, not a view: every evaluation model reads it, so it is computed
-- once per build, and a plan that joins it to millions of predictions may run in parallel
-- (a view's per-run lookups would keep such a plan to one process) with real statistics.
{{ config(
    materialized='table',
    indexes=[{'columns': ['run_uuid'], 'unique': true}],
    pre_hook='{{ set_local_jit_off() }}',
    post_hook='analyze {{ this }}',
) }}

with

runs as (
    select * from {{ ref('stg_mlflow__runs') }}
),

experiments as (
    select * from {{ ref('stg_mlflow__experiments') }}
),

run_datasets as (
    select * from {{ ref('stg_dataset__run_datasets') }}
),

-- not materialized: inlined into the per-run lookup below (an index probe), never read in full
predictions as not materialized (
    select * from {{ ref('stg_dataset__predictions') }}
),

run_versions as (
    select * from {{ ref('stg_dataset__run_versions') }}
),

dataset_versions as (
    select * from {{ ref('stg_dataset__dataset_versions') }}
),

metrics as (
    select * from {{ ref('stg_mlflow__metrics') }}
),

latest_metrics as (
    select * from {{ ref('stg_mlflow__latest_metrics') }}
),

-- every value MLflow holds for the run, its history and its latest values, in one digest
metric_digests as (
    select
        run_uuid,
        {{ run_metric_digest() }} as metric_digest
    from (
        select
            run_uuid,
            'h' as metric_table,
            metric_key,
            stored_value,
            is_nan,
            step,
            logged_at
        from metrics
        union all
        select
            run_uuid,
            'l' as metric_table,
            metric_key,
            stored_value,
            is_nan,
            step,
            logged_at
        from latest_metrics
    ) as metric_values
    group by run_uuid
),

classified as (
    select
        runs.run_uuid,
        runs.experiment_id,
        runs.run_status,
        run_datasets.dataset_id,
        runs.is_deleted or coalesce(experiments.is_deleted, false) as is_deleted,
        case
            when runs.is_deleted then 'run deleted'
            when experiments.is_deleted then 'experiment deleted'
            when runs.run_status <> 'FINISHED' then 'run ' || lower(runs.run_status)
            when not exists (
                select 1 from predictions
                where predictions.run_uuid = runs.run_uuid
            ) then 'no predictions'
            when run_datasets.dataset_id is null then 'no dataset declared'
        end as exclusion_reason
    from runs
    left join experiments
        on runs.experiment_id = experiments.experiment_id
    left join run_datasets
        on runs.run_uuid = run_datasets.run_uuid
),

flagged as (
    select
        *,
        exclusion_reason is null as is_evaluated
    from classified
),

final as (
    select
        flagged.*,
        {{ dbt.hash(dbt.concat([
            dbt.safe_cast('coalesce(run_versions.run_version, 0)', dbt.type_string()), "'|'",
            dbt.safe_cast('coalesce(dataset_versions.dataset_version, 0)', dbt.type_string()), "'|'",
            "coalesce(metric_digests.metric_digest, '')", "'|'",
            dbt.safe_cast('flagged.is_evaluated', dbt.type_string()),
        ])) }} as input_fingerprint
    from flagged
    left join run_versions
        on flagged.run_uuid = run_versions.run_uuid
    left join dataset_versions
        on flagged.dataset_id = dataset_versions.dataset_id
    left join metric_digests
        on flagged.run_uuid = metric_digests.run_uuid
)

select * from final
