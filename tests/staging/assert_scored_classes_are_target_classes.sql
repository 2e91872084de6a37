-- Every class a prediction holds a probability for is a class of the targets of the
-- predicted sample's dataset. A row is a score of a class no target of that dataset has.
with

prediction_scores as (
    select * from {{ source('dataset', 'prediction_scores') }}
),

predictions as (
    select * from {{ source('dataset', 'predictions') }}
),

samples as (
    select * from {{ ref('stg_dataset__samples') }}
),

targets as (
    select * from {{ ref('stg_dataset__targets') }}
),

{{ dataset_class_ctes() }}

candidates as (
    select *
    from prediction_scores
    where not exists (
        select 1 from universal_classes
        where universal_classes.actual_class = prediction_scores.class
    )
),

final as (
    select
        candidates.prediction_id,
        predictions.run_uuid,
        samples.dataset_id,
        candidates.class as score_class,
        candidates.probability
    from candidates
    inner join predictions
        on candidates.prediction_id = predictions.prediction_id
    inner join samples
        on predictions.sample_index = samples.sample_index
    left join dataset_classes
        on
            samples.dataset_id = dataset_classes.dataset_id
            and candidates.class = dataset_classes.actual_class
    where dataset_classes.actual_class is null
)

select * from final
