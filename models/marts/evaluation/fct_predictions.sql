-- One row per prediction of an evaluated run, with its true class and the probabilities of
-- its predicted and its true class. A view, not a table: a copy of every prediction would
-- cost more to write than every other evaluation mart together (10 million rows at the
-- benchmark's largest size), and the producer's tables answer it through their keys.
-- Each probability is joined on the scores' primary key, so a query of one run reads that
-- run's rows through the run_uuid index, and a query that leaves a probability out leaves
-- out its join. (Whether a prediction's probabilities sum to one is a test on the source,
-- tests/staging/assert_prediction_probabilities_sum_to_one.sql, that names the failing rows.)
{{ config(materialized='stable_view') }}

with

predictions as (
    select * from {{ ref('stg_dataset__predictions') }}
),

targets as (
    select * from {{ ref('stg_dataset__targets') }}
),

scores as not materialized (
    select * from {{ ref('stg_dataset__prediction_scores') }}
),

runs as (
    select * from {{ ref('int_runs_evaluated') }}
),

final as (
    select
        predictions.prediction_id,
        predictions.run_uuid,
        predictions.sample_index,
        predictions.prediction_index,
        predictions.predicted_class,
        targets.actual_class,
        predictions.predicted_class = targets.actual_class as is_correct,
        predicted_scores.probability as predicted_class_probability,
        actual_scores.probability as actual_class_probability
    from predictions
    inner join runs
        on predictions.run_uuid = runs.run_uuid
    inner join targets
        on predictions.sample_index = targets.sample_index
    left join scores as predicted_scores
        on
            predictions.prediction_id = predicted_scores.prediction_id
            and predictions.predicted_class = predicted_scores.score_class
    left join scores as actual_scores
        on
            predictions.prediction_id = actual_scores.prediction_id
            and targets.actual_class = actual_scores.score_class
)

select * from final
