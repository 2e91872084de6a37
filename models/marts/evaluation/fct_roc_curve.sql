-- The one-vs-rest ROC curve of each class of each evaluated run, as scikit-learn's
-- roc_curve(y_true == class, probability of the class) gives it: its drop_intermediate points
-- (the thresholds where the curve bends; the others lie on a straight line between two kept
-- ones, so the area under the kept points is the exact AUC), from the threshold +Infinity
-- (no prediction positive) down to the lowest probability. A view over the arrays of
-- int_run_class_scores_summarized (no sort, no scan of the predictions): one run's curve is
-- read through that table's key, and the published copy is written run by run.
{{ config(materialized='stable_view') }}

with

class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
),

final as (
    select
        class_scores.run_uuid,
        class_scores.score_class as class_label,
        cast(points.point_index as integer) as point_index,
        points.threshold,
        points.false_positives,
        points.true_positives,
        -- undefined (null; scikit-learn's nan) for a class with no negatives or no positives
        cast(points.false_positives as {{ dbt.type_float() }}) / nullif(class_scores.n_negative, 0) as fpr,
        cast(points.true_positives as {{ dbt.type_float() }}) / nullif(class_scores.n_positive, 0) as tpr
    from class_scores
    -- the curve starts at threshold +Infinity, where no prediction is positive
    cross join lateral unnest(
        array_prepend(cast('Infinity' as {{ dbt.type_float() }}), class_scores.roc_thresholds),
        array_prepend(cast(0 as bigint), class_scores.roc_false_positives),
        array_prepend(cast(0 as bigint), class_scores.roc_true_positives)
    ) with ordinality as points (threshold, false_positives, true_positives, point_index)
)

select * from final
