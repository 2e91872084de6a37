-- The one-vs-rest precision-recall curve of each class of each evaluated run, as
-- scikit-learn's precision_recall_curve(y_true == class, probability of the class,
-- drop_intermediate=True) gives it: thresholds rising, then the last point (precision 1,
-- recall 0, no threshold). The points dropped lie inside a run of equal recall, so the
-- average precision over the kept points is exact (fct_class_metrics.average_precision).
-- A view over the arrays of int_run_class_scores_summarized, like fct_roc_curve.
{{ config(materialized='stable_view') }}

with

class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
),

-- the stored points, highest threshold first (position 1)
stored_points as (
    select
        class_scores.run_uuid,
        class_scores.score_class,
        class_scores.n_positive,
        cast(cardinality(class_scores.pr_thresholds) - listed.position + 1 as integer) as point_index,
        listed.threshold,
        listed.false_positives,
        listed.true_positives
    from class_scores
    cross join lateral unnest(
        class_scores.pr_thresholds, class_scores.pr_false_positives, class_scores.pr_true_positives
    ) with ordinality as listed (threshold, false_positives, true_positives, position)
),

-- after the lowest threshold, the point without one (precision 1, recall 0)
last_points as (
    select
        run_uuid,
        score_class,
        n_positive,
        cast(cardinality(pr_thresholds) + 1 as integer) as point_index,
        cast(null as {{ dbt.type_float() }}) as threshold,
        cast(null as bigint) as false_positives,
        cast(null as bigint) as true_positives
    from class_scores
),

points as (
    select * from stored_points
    union all
    select * from last_points
),

final as (
    select
        run_uuid,
        score_class as class_label,
        point_index,
        threshold,
        case
            when true_positives is null then 1
            else cast(true_positives as {{ dbt.type_float() }}) / (true_positives + false_positives)
        end as precision,
        -- with no positive, scikit-learn sets recall to 1 at every threshold
        case
            when true_positives is null then 0
            when n_positive = 0 then 1
            else cast(true_positives as {{ dbt.type_float() }}) / n_positive
        end as recall
    from points
)

select * from final
