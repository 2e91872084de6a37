-- Every prediction is of a sample of its run's dataset (run_datasets): a prediction written
-- by any means with the sample_index of another dataset's sample would be scored against
-- that dataset's targets. Counted per run, when the run is counted (int_run_predictions_counted).
-- A run with no dataset declared is not evaluated (int_runs_classified: 'no dataset declared'),
-- so its predictions are not foreign to anything.
with

counted as (
    select * from {{ ref('int_run_predictions_counted') }}
),

runs as (
    select * from {{ ref('int_runs_classified') }}
),

datasets as (
    select * from {{ ref('stg_dataset__datasets') }}
),

final as (
    select
        counted.run_uuid,
        datasets.dataset_name as run_dataset,
        counted.n_predictions,
        counted.n_foreign_predictions
    from counted
    inner join runs
        on counted.run_uuid = runs.run_uuid
    left join datasets
        on runs.dataset_id = datasets.dataset_id
    where counted.n_foreign_predictions > 0 and runs.dataset_id is not null
)

select * from final
