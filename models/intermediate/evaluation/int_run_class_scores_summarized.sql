-- What the class probabilities of each evaluated run say, per scored class, from one pass per
-- run over its probabilities: the one-vs-rest ROC AUC and average precision, the points of the
-- ROC and precision-recall curves (scikit-learn's, drop_intermediate), the reliability bins
-- (calibration_curve's), the log-loss and Brier terms, the top-2 hits, and the confidence bins
-- of the predictions whose predicted class it is (expected calibration error).
-- A table, incremental by run (macros/incremental_helpers.sql): the pass sorts every score of a
-- run, so a build reads only the runs evaluated since the last one. The curve points are kept
-- here as arrays, a few kB per run and class, and the curve marts unnest them: a row per point
-- would cost more to write than the pass itself.
{{ config(**run_keyed_incremental()) }}

{%- set calibration_bins = var('calibration_bins') %}
{%- set confidence_bins = var('confidence_bins') %}

with

-- the runs to summarize: every evaluated run in a full build, the new ones otherwise
runs as (
    select evaluated.run_uuid from {{ ref('int_runs_evaluated') }} as evaluated
    where {{ run_is_new('evaluated.run_uuid') }}
),

-- not materialized: each is read inside the per-run lookup below, never in full
predictions as not materialized (
    select * from {{ ref('stg_dataset__predictions') }}
),

targets as not materialized (
    select * from {{ ref('stg_dataset__targets') }}
),

scores as not materialized (
    select * from {{ ref('stg_dataset__prediction_scores') }}
),

-- One run at a time (a lateral join): its predictions through the run_uuid index, their
-- scores through the scores' primary key, sorted in memory. No sort of every score of every
-- run, and only the new runs' rows in an incremental build.
per_class as (
    select
        runs.run_uuid,
        run_classes.*
    from runs
    -- a correlated subquery cannot be a CTE of the model: the rule does not apply
    cross join lateral (  -- noqa: ST05
        with

        -- every probability of the run, with what its prediction says of it; within its
        -- prediction, whether the probabilities sum to one and whether the class is among the
        -- two most probable (ties go to the greater class, as top_k_accuracy_score)
        scored as (
            select
                scores.score_class,
                scores.probability,
                targets.actual_class = scores.score_class as is_positive,
                predictions.predicted_class = scores.score_class as is_predicted,
                predictions.predicted_class = targets.actual_class as is_correct,
                abs(sum(scores.probability) over by_prediction - 1)
                > {{ var('probability_tolerance') }} as is_sum_off,
                row_number() over by_prediction <= 2 as is_top_2
            from predictions
            inner join targets
                on predictions.sample_index = targets.sample_index
            inner join scores
                on predictions.prediction_id = scores.prediction_id
            where predictions.run_uuid = runs.run_uuid
            -- one window for both (one sort, one pass): the sum's frame is the whole prediction
            window by_prediction as (
                partition by predictions.prediction_id
                order by scores.probability desc, scores.score_class desc
                rows between unbounded preceding and unbounded following
            )
        ),

        -- one row per class and distinct probability: the thresholds of scikit-learn's curves
        levels as (
            select
                score_class,
                probability,
                count(*) filter (where is_positive) as n_positive,
                count(*) filter (where not is_positive) as n_negative,
                count(*) filter (where is_sum_off) as n_sums_off,
                count(*) filter (where is_positive and is_top_2) as n_top_2,
                count(*) filter (where is_predicted) as n_predicted,
                count(*) filter (where is_predicted and is_correct) as n_predicted_correct
            from scored
            group by score_class, probability
        ),

        -- from the highest threshold down: the true and false positives at or above each, and
        -- the next threshold's counts, which say whether a point is kept on each curve
        cumulated as (
            select
                score_class,
                probability,
                n_positive,
                n_negative,
                n_sums_off,
                n_top_2,
                n_predicted,
                n_predicted_correct,
                sum(n_positive) over from_top as tps,
                sum(n_negative) over from_top as fps,
                lead(n_positive) over from_top as next_n_positive,
                lead(n_negative) over from_top as next_n_negative,
                row_number() over from_top as level_number,
                {{ uniform_bin('probability', calibration_bins) }} as calibration_bin,
                {{ uniform_bin('probability', confidence_bins) }} as confidence_bin
            from levels
            window from_top as (
                partition by score_class order by probability desc rows unbounded preceding
            )
        ),

        -- drop_intermediate, as scikit-learn: the ROC curve keeps the first and last thresholds
        -- and those where the slope changes (a second difference of the cumulative counts is
        -- a first difference of the counts); the precision-recall curve keeps the first and
        -- last and those next to a change of the true positives
        flagged as (
            select
                *,
                level_number = 1 or next_n_positive is null
                or next_n_positive <> n_positive or next_n_negative <> n_negative as is_roc_point,
                level_number = 1 or next_n_positive is null
                or n_positive <> 0 or next_n_positive <> 0 as is_pr_point
            from cumulated
        ),

        -- per class: the counts and sums every metric of the probabilities needs, and the curves
        class_totals as (
            select
                score_class,
                sum(n_positive) as n_positive,
                sum(n_negative) as n_negative,
                -- Mann-Whitney: each positive wins against the negatives below its threshold,
                -- and half against those at it
                sum(n_positive) * sum(n_negative) - sum(n_positive * fps)
                + sum(n_positive * n_negative) / 2.0 as positive_pairs_won,
                -- average precision: the precision at each positive's threshold, averaged over them
                sum(n_positive * (cast(tps as {{ dbt.type_float() }}) / (tps + fps))) as positive_precision_sum,
                -- log loss clips each probability to [eps, 1 - eps], eps = 2.220446049250313e-16
                -- (numpy's float64 machine epsilon), exactly as scikit-learn does
                coalesce(sum(
                    n_positive
                    * -ln(greatest(least(probability, 1 - 2.220446049250313e-16), 2.220446049250313e-16))
                ), 0) as positive_log_loss_sum,
                sum(probability * probability * (n_positive + n_negative)) as probability_square_sum,
                sum(probability * n_positive) as positive_probability_sum,
                sum(n_sums_off) as n_probability_sums_off,
                sum(n_top_2) as n_top_2,
                -- the curves' points, highest threshold first, one array per coordinate (a
                -- curve mart unnests them together, reading each array once)
                array_agg(probability order by probability desc) filter (where is_roc_point) as roc_thresholds,
                array_agg(fps order by probability desc) filter (where is_roc_point) as roc_false_positives,
                array_agg(tps order by probability desc) filter (where is_roc_point) as roc_true_positives,
                array_agg(probability order by probability desc) filter (where is_pr_point) as pr_thresholds,
                array_agg(fps order by probability desc) filter (where is_pr_point) as pr_false_positives,
                array_agg(tps order by probability desc) filter (where is_pr_point) as pr_true_positives
            from flagged
            group by score_class
        ),

        -- per class and non-empty uniform bin: predictions, their probability sum, positives
        calibration as (
            select
                score_class,
                array_agg(calibration_bin order by calibration_bin) as calibration_bins,
                array_agg(n_binned order by calibration_bin) as calibration_counts,
                array_agg(probability_sum order by calibration_bin) as calibration_probability_sums,
                array_agg(n_positive order by calibration_bin) as calibration_positives
            from (
                select
                    score_class,
                    calibration_bin,
                    sum(n_positive + n_negative) as n_binned,
                    sum(probability * (n_positive + n_negative)) as probability_sum,
                    sum(n_positive) as n_positive
                from flagged
                group by score_class, calibration_bin
            ) as binned
            group by score_class
        ),

        -- the run's top-label calibration: its predictions by the confidence bin of their
        -- predicted class's probability, sum over bins of |correct - sum of confidences| / N
        confidence as (
            select sum(abs(n_correct - confidence_sum)) / sum(n_confident) as expected_calibration_error
            from (
                select
                    confidence_bin,
                    sum(n_predicted) as n_confident,
                    sum(probability * n_predicted) as confidence_sum,
                    sum(n_predicted_correct) as n_correct
                from flagged
                where n_predicted > 0
                group by confidence_bin
            ) as confident
        )

        select
            class_totals.*,
            calibration.calibration_bins,
            calibration.calibration_counts,
            calibration.calibration_probability_sums,
            calibration.calibration_positives,
            confidence.expected_calibration_error
        from class_totals
        inner join calibration
            on class_totals.score_class = calibration.score_class
        cross join confidence
    ) as run_classes
),

final as (
    select
        run_uuid,
        score_class,
        cast(n_positive as bigint) as n_positive,
        cast(n_negative as bigint) as n_negative,
        case
            when n_positive > 0 and n_negative > 0
                then
                    cast(positive_pairs_won as {{ dbt.type_float() }})
                    / (cast(n_positive as {{ dbt.type_float() }}) * n_negative)
        end as roc_auc,
        -- 0 for a class no prediction is of, as average_precision_score (recall is then 1)
        case
            when n_positive > 0 then positive_precision_sum / n_positive else 0
        end as average_precision,
        positive_log_loss_sum,
        probability_square_sum,
        positive_probability_sum,
        cast(n_probability_sums_off as bigint) as n_probability_sums_off,
        cast(n_top_2 as bigint) as n_top_2,
        roc_thresholds,
        cast(roc_false_positives as bigint[]) as roc_false_positives,
        cast(roc_true_positives as bigint[]) as roc_true_positives,
        pr_thresholds,
        cast(pr_false_positives as bigint[]) as pr_false_positives,
        cast(pr_true_positives as bigint[]) as pr_true_positives,
        cast(calibration_bins as integer[]) as calibration_bins,
        cast(calibration_counts as bigint[]) as calibration_counts,
        calibration_probability_sums,
        cast(calibration_positives as bigint[]) as calibration_positives,
        expected_calibration_error
    from per_class
)

select * from final
