-- The one-vs-rest ROC curve of each class of each evaluated run, as scikit-learn's
-- roc_curve(y_true == class, probability of the class) gives it: its drop_intermediate points
-- (the thresholds where the curve bends; the others lie on a straight line between two kept
-- ones, so the area under the kept points is the exact AUC), from the threshold +Infinity
-- (no prediction positive) down to the lowest probability. A view over the arrays of
-- int_run_class_scores_summarized (no sort, no scan of the predictions): one run's curve is
-- read through that table's key, and the published copy is written run by run.
{{ config(materialized='view') }}

with

class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
),

final as (
    select
        class_scores.run_uuid,
        class_scores.score_class as class_label,
        cast(points.point_index as integer) as point_index,
        case
            when points.point_index = 1 then cast('Infinity' as {{ dbt.type_float() }})
            else class_scores.roc_points[points.point_index - 1][1]
        end as threshold,
        cast(coalesce(class_scores.roc_points[points.point_index - 1][2], 0) as bigint) as false_positives,
        cast(coalesce(class_scores.roc_points[points.point_index - 1][3], 0) as bigint) as true_positives,
        -- undefined (null; scikit-learn's nan) for a class with no negatives or no positives
        coalesce(class_scores.roc_points[points.point_index - 1][2], 0)
        / nullif(class_scores.n_negative, 0) as fpr,
        coalesce(class_scores.roc_points[points.point_index - 1][3], 0)
        / nullif(class_scores.n_positive, 0) as tpr
    from class_scores
    cross join lateral generate_series(1, array_length(class_scores.roc_points, 1) + 1) as points (point_index)
)

select * from final
