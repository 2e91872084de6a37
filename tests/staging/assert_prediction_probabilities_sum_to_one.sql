-- The class probabilities of every scored prediction sum to 1, within
-- var('probability_tolerance') (dbt_project.yml). A row is a prediction whose sum is off.
with

prediction_scores as (
    select * from {{ source('dataset', 'prediction_scores') }}
),

sums as (
    select
        prediction_id,
        count(*) as n_scored_classes,
        sum(probability) as probability_sum
    from prediction_scores
    group by prediction_id
),

final as (
    select *
    from sums
    where
        probability_sum is null
        or abs(probability_sum - 1) > {{ var('probability_tolerance') }}
)

select * from final
