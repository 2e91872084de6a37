-- One-vs-rest counts and rates per run and class, all from the confusion matrix.
-- A rate whose denominator is zero is 0, as scikit-learn's zero_division=0.
-- Incremental by run, like the confusion matrix it reads: a build adds the evaluated runs it
-- does not hold yet, and first removes the runs no longer evaluated.
{{ config(**run_keyed_incremental()) }}

with

-- the cells of the runs evaluated since the last build, through the run_uuid index
confusion as (
    select * from {{ ref('fct_confusion_matrix') }}
    {{ where_run_is_new(ref('int_runs_evaluated')) }}
),

-- the average precision of each scored class of those runs
class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
    {{ where_run_is_new(ref('int_runs_evaluated')) }}
),

run_totals as (
    select
        run_uuid,
        cast(sum(n) as bigint) as n_predictions
    from confusion
    group by run_uuid
),

actual_totals as (
    select
        run_uuid,
        actual_class as class_label,
        max(actual_class_name) as class_name,
        cast(sum(n) as bigint) as support,
        cast(sum(n) filter (where actual_class = predicted_class) as bigint) as tp
    from confusion
    group by run_uuid, actual_class
),

predicted_totals as (
    select
        run_uuid,
        predicted_class as class_label,
        cast(sum(n) as bigint) as n_predicted
    from confusion
    group by run_uuid, predicted_class
),

counts as (
    select
        actual_totals.run_uuid,
        actual_totals.class_label,
        actual_totals.class_name,
        actual_totals.support,
        actual_totals.tp,
        predicted_totals.n_predicted - actual_totals.tp as fp,
        actual_totals.support - actual_totals.tp as fn,
        run_totals.n_predictions
        - actual_totals.support
        - predicted_totals.n_predicted
        + actual_totals.tp as tn
    from actual_totals
    inner join predicted_totals
        on
            actual_totals.run_uuid = predicted_totals.run_uuid
            and actual_totals.class_label = predicted_totals.class_label
    inner join run_totals
        on actual_totals.run_uuid = run_totals.run_uuid
),

final as (
    select
        counts.run_uuid,
        counts.class_label,
        counts.class_name,
        counts.support,
        counts.tp,
        counts.fp,
        counts.fn,
        counts.tn,
        {{ safe_ratio('counts.tp', 'counts.tp + counts.fp') }} as precision,
        {{ safe_ratio('counts.tp', 'counts.tp + counts.fn') }} as recall,
        {{ safe_ratio('2 * counts.tp', '2 * counts.tp + counts.fp + counts.fn') }} as f1,
        {{ safe_ratio('counts.tn', 'counts.tn + counts.fp') }} as specificity,
        {{ wilson_bound('counts.tp', 'counts.support', 'low') }} as recall_ci_low,
        {{ wilson_bound('counts.tp', 'counts.support', 'high') }} as recall_ci_high,
        class_scores.average_precision
    from counts
    left join class_scores
        on
            counts.run_uuid = class_scores.run_uuid
            and counts.class_label = class_scores.score_class
)

select * from final
