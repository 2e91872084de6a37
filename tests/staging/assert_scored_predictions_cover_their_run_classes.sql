-- Every prediction of a run that stored probabilities holds one for every class of its run:
-- the classes of the run's targets or predictions (scikit-learn's labels=None, as the marts
-- take them). A missing row would be read as a probability of 0 and bend log loss and ROC AUC
-- without a trace. A run that stored no probabilities at all is allowed (its log loss and
-- ROC AUC are null). A row is a (run, prediction, missing class).
with

predictions as (
    select * from {{ source('dataset', 'predictions') }}
),

prediction_scores as (
    select * from {{ source('dataset', 'prediction_scores') }}
),

targets as (
    select * from {{ ref('stg_dataset__targets') }}
),

-- how many classes of the targets each prediction holds a probability for: one pass over
-- the scores (a score of a class no target has is assert_scored_classes_are_target_classes')
scored as (
    select
        prediction_id,
        count(*) as n_scored_classes
    from prediction_scores
    where class in (select targets.actual_class from targets)
    group by prediction_id
),

run_predictions as (
    select
        predictions.prediction_id,
        predictions.run_uuid,
        predictions.class as predicted_class,
        targets.actual_class,
        coalesce(scored.n_scored_classes, 0) as n_scored_classes
    from predictions
    -- a prediction without a target is the relationships test's to report
    left join targets
        on predictions.sample_index = targets.sample_index
    left join scored
        on predictions.prediction_id = scored.prediction_id
),

run_classes as (
    select
        run_uuid,
        actual_class as class_label
    from run_predictions
    where actual_class is not null
    union
    select
        run_uuid,
        predicted_class as class_label
    from run_predictions
),

run_class_counts as (
    select
        run_uuid,
        count(*) as n_run_classes
    from run_classes
    group by run_uuid
),

-- the runs that stored probabilities for at least one prediction
scored_runs as (
    select run_uuid
    from run_predictions
    group by run_uuid
    having max(n_scored_classes) > 0
),

-- a prediction whose count of probabilities is not its run's count of classes: one holding
-- as many has them all, unless it also scores a class some target has but its run has not
candidates as (
    select
        run_predictions.run_uuid,
        run_predictions.prediction_id
    from run_predictions
    inner join scored_runs
        on run_predictions.run_uuid = scored_runs.run_uuid
    inner join run_class_counts
        on run_predictions.run_uuid = run_class_counts.run_uuid
    where run_predictions.n_scored_classes <> run_class_counts.n_run_classes
),

final as (
    select
        candidates.run_uuid,
        candidates.prediction_id,
        run_classes.class_label as missing_class
    from candidates
    inner join run_classes
        on candidates.run_uuid = run_classes.run_uuid
    left join prediction_scores
        on
            candidates.prediction_id = prediction_scores.prediction_id
            and run_classes.class_label = prediction_scores.class
    where prediction_scores.prediction_id is null
)

select * from final
