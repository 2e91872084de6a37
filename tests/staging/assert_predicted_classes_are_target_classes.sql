-- Every predicted class is a class of the targets of the predicted sample's dataset.
-- A row is a prediction of a class no target of that dataset has.
with

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
    from predictions
    where not exists (
        select 1 from universal_classes
        where universal_classes.actual_class = predictions.class
    )
),

final as (
    select
        candidates.prediction_id,
        candidates.run_uuid,
        candidates.sample_index,
        samples.dataset_id,
        candidates.class as predicted_class
    from candidates
    -- a prediction of an unknown sample is the relationships test's to report
    inner join samples
        on candidates.sample_index = samples.sample_index
    left join dataset_classes
        on
            samples.dataset_id = dataset_classes.dataset_id
            and candidates.class = dataset_classes.actual_class
    where dataset_classes.actual_class is null
)

select * from final
