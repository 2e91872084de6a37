-- Which runs are evaluated: finished, not deleted, with predictions. The others are
-- kept with the reason they were left out, so they are counted rather than dropped.
-- Predictions are looked up per run (an index probe) rather than counted for all runs
-- in one scan: a query that only asks which runs are evaluated never counts millions of
-- rows, and the count is made only where n_predictions is selected.
with

runs as (
    select * from {{ ref('stg_mlflow__runs') }}
),

experiments as (
    select * from {{ ref('stg_mlflow__experiments') }}
),

-- not materialized: inlined into each per-run lookup below, never read in full
predictions as not materialized (
    select * from {{ ref('stg_dataset__predictions') }}
),

classified as (
    select
        runs.run_uuid,
        runs.experiment_id,
        runs.run_status,
        runs.is_deleted or coalesce(experiments.is_deleted, false) as is_deleted,
        (
            select count(*) from predictions
            where predictions.run_uuid = runs.run_uuid
        ) as n_predictions,
        case
            when runs.is_deleted then 'run deleted'
            when experiments.is_deleted then 'experiment deleted'
            when runs.run_status <> 'FINISHED' then 'run ' || lower(runs.run_status)
            when not exists (
                select 1 from predictions
                where predictions.run_uuid = runs.run_uuid
            ) then 'no predictions'
        end as exclusion_reason
    from runs
    left join experiments
        on runs.experiment_id = experiments.experiment_id
),

final as (
    select
        *,
        exclusion_reason is null as is_evaluated
    from classified
)

select * from final
