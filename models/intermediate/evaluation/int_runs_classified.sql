-- Which runs are evaluated: finished, not deleted, with predictions, on a declared dataset
-- (run_datasets). The others are kept with the reason they were left out, so they are
-- counted rather than dropped.
-- A table of a row per run, not a view: every evaluation model reads it, so it is computed
-- once per build, and a plan that joins it to millions of predictions may run in parallel
-- (a view's per-run lookups would keep such a plan to one process) with real statistics.
{{ config(materialized='table', post_hook='analyze {{ this }}') }}

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

final as (
    select
        *,
        exclusion_reason is null as is_evaluated
    from classified
)

select * from final
