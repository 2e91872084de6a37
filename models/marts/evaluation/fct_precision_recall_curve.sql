-- The one-vs-rest precision-recall curve of each class of each evaluated run, as
-- scikit-learn's precision_recall_curve(y_true == class, probability of the class,
-- drop_intermediate=True) gives it: thresholds rising, then the last point (precision 1,
-- recall 0, no threshold). The points dropped lie inside a run of equal recall, so the
-- average precision over the kept points is exact (fct_class_metrics.average_precision).
-- A view over the arrays of int_run_class_scores_summarized, like fct_roc_curve.
{{ config(materialized='view') }}

with

class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
),

-- the stored points are highest threshold first; the curve lists them lowest first
points as (
    select
        class_scores.run_uuid,
        class_scores.score_class,
        class_scores.n_positive,
        cast(positions.point_index as integer) as point_index,
        -- out of the array (the last point) each is null
        class_scores.pr_points[positions.n_points - positions.point_index + 1][1] as threshold,
        class_scores.pr_points[positions.n_points - positions.point_index + 1][2] as false_positives,
        class_scores.pr_points[positions.n_points - positions.point_index + 1][3] as true_positives
    from class_scores
    cross join lateral (
        select
            array_length(class_scores.pr_points, 1) as n_points,
            point_index
        from generate_series(1, array_length(class_scores.pr_points, 1) + 1) as listed (point_index)
    ) as positions
),

final as (
    select
        run_uuid,
        score_class as class_label,
        point_index,
        threshold,
        case
            when true_positives is null then 1
            else true_positives / (true_positives + false_positives)
        end as precision,
        -- with no positive, scikit-learn sets recall to 1 at every threshold
        case
            when true_positives is null then 0
            when n_positive = 0 then 1
            else true_positives / n_positive
        end as recall
    from points
)

select * from final
