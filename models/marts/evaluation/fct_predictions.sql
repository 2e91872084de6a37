-- One row per prediction of an evaluated run, with its true class and the probabilities
-- that log loss needs. One pass over the scores: each prediction's rows are folded once.
with

predictions as (
    select * from {{ ref('stg_dataset__predictions') }}
),

targets as (
    select * from {{ ref('stg_dataset__targets') }}
),

scores as (
    select * from {{ ref('stg_dataset__prediction_scores') }}
),

runs as (
    select * from {{ ref('int_runs_classified') }}
    where is_evaluated
),

scored as (
    select
        predictions.prediction_id,
        predictions.run_uuid,
        predictions.sample_index,
        predictions.prediction_index,
        predictions.predicted_class,
        targets.actual_class
    from predictions
    inner join runs
        on predictions.run_uuid = runs.run_uuid
    inner join targets
        on predictions.sample_index = targets.sample_index
),

probabilities as (
    select
        scored.prediction_id,
        max(scores.probability) filter (
            where scores.score_class = scored.predicted_class
        ) as predicted_class_probability,
        max(scores.probability) filter (
            where scores.score_class = scored.actual_class
        ) as actual_class_probability,
        sum(scores.probability) as probability_sum,
        count(scores.score_class) as n_scored_classes
    from scored
    left join scores
        on scored.prediction_id = scores.prediction_id
    group by scored.prediction_id
),

final as (
    select
        scored.prediction_id,
        scored.run_uuid,
        scored.sample_index,
        scored.prediction_index,
        scored.predicted_class,
        scored.actual_class,
        scored.predicted_class = scored.actual_class as is_correct,
        probabilities.predicted_class_probability,
        probabilities.actual_class_probability,
        probabilities.probability_sum,
        probabilities.n_scored_classes
    from scored
    inner join probabilities
        on scored.prediction_id = probabilities.prediction_id
)

select * from final
