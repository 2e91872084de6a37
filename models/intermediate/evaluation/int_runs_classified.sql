-- Which runs are evaluated: finished, not deleted, with predictions. The others are
-- kept with the reason they were left out, so they are counted rather than dropped.
with

runs as (
    select * from {{ ref('stg_mlflow__runs') }}
),

experiments as (
    select * from {{ ref('stg_mlflow__experiments') }}
),

predictions as (
    select * from {{ ref('stg_dataset__predictions') }}
),

prediction_counts as (
    select
        run_uuid,
        count(*) as n_predictions
    from predictions
    group by run_uuid
),

classified as (
    select
        runs.run_uuid,
        runs.experiment_id,
        runs.run_status,
        runs.is_deleted or coalesce(experiments.is_deleted, false) as is_deleted,
        coalesce(prediction_counts.n_predictions, 0) as n_predictions,
        case
            when runs.is_deleted then 'run deleted'
            when experiments.is_deleted then 'experiment deleted'
            when runs.run_status <> 'FINISHED' then 'run ' || lower(runs.run_status)
            when prediction_counts.n_predictions is null then 'no predictions'
        end as exclusion_reason
    from runs
    left join experiments
        on runs.experiment_id = experiments.experiment_id
    left join prediction_counts
        on runs.run_uuid = prediction_counts.run_uuid
),

final as (
    select
        *,
        exclusion_reason is null as is_evaluated
    from classified
)

select * from final
