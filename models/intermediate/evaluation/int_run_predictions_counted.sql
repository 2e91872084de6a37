-- How many predictions the producer holds for each run that has any (dim_runs.n_predictions),
-- and how many of them are of a sample outside the run's declared dataset (a build test fails
-- on those). Run-keyed incremental: a build counts the runs it does not hold yet and the runs
-- whose input fingerprint changed (int_runs_classified), each through the run_uuid index, and
-- deletes the runs gone from MLflow. `ml-eval build --full-refresh` counts every run again.
{{ config(**run_keyed_incremental(runs_model='int_runs_classified')) }}

with

runs as (
    select * from {{ ref('int_runs_classified') }}
),

-- not materialized: inlined into the per-run count below (an index probe), never read in full
predictions as not materialized (
    select * from {{ ref('stg_dataset__predictions') }}
),

samples as not materialized (
    select * from {{ ref('stg_dataset__samples') }}
),

uncounted_runs as (
    select
        runs.run_uuid,
        runs.dataset_id
    from runs
    where {{ run_is_new('runs.run_uuid') }}
),

final as (
    select
        uncounted_runs.run_uuid,
        run_predictions.n_predictions,
        run_predictions.n_foreign_predictions
    from uncounted_runs
    -- a correlated count per run cannot be a CTE of the model: the rule does not apply
    cross join
        lateral (  -- noqa: ST05
            select
                count(*) as n_predictions,
                -- a prediction of a sample of another dataset (or of none) than the run's
                count(*) filter (
                    where samples.dataset_id is distinct from uncounted_runs.dataset_id
                ) as n_foreign_predictions
            from predictions
            left join samples
                on predictions.sample_index = samples.sample_index
            where predictions.run_uuid = uncounted_runs.run_uuid
        ) as run_predictions
    where run_predictions.n_predictions > 0
)

select * from final
