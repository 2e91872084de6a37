-- One-vs-rest ROC AUC of each run and scored class, as the Mann-Whitney statistic with
-- average ranks for tied scores: the same number as the area under scikit-learn's ROC
-- curve. Null where a class has no positive or no negative example.
with

predictions as (
    select * from {{ ref('fct_predictions') }}
),

scores as (
    select * from {{ ref('stg_dataset__prediction_scores') }}
),

labelled as (
    select
        predictions.run_uuid,
        scores.score_class,
        scores.probability,
        predictions.actual_class = scores.score_class as is_positive
    from predictions
    inner join scores
        on predictions.prediction_id = scores.prediction_id
),

ranked as (
    select
        run_uuid,
        score_class,
        is_positive,
        rank()
            over (
                partition by run_uuid, score_class order by probability
            )
        + (count(*) over (
            partition by run_uuid, score_class, probability
        ) - 1) / 2.0 as average_rank
    from labelled
),

per_class as (
    select
        run_uuid,
        score_class,
        count(*) filter (where is_positive) as n_positive,
        count(*) filter (where not is_positive) as n_negative,
        sum(average_rank) filter (where is_positive) as positive_rank_sum
    from ranked
    group by run_uuid, score_class
),

final as (
    select
        run_uuid,
        score_class,
        n_positive,
        n_negative,
        case
            when n_positive > 0 and n_negative > 0
                then
                    (
                        cast(positive_rank_sum as {{ dbt.type_float() }})
                        - n_positive * (n_positive + 1) / 2.0
                    )
                    / (cast(n_positive as {{ dbt.type_float() }}) * n_negative)
        end as roc_auc
    from per_class
)

select * from final
