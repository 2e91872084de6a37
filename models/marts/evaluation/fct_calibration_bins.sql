-- The reliability diagram of each class of each evaluated run (one-vs-rest): the predictions'
-- probabilities of the class in var('calibration_bins') uniform bins, as scikit-learn's
-- calibration_curve(y_true == class, probability of the class, n_bins=10) bins them; per
-- non-empty bin the observed frequency of the class (prob_true), the mean probability
-- (prob_pred) and the count. A view over the arrays of int_run_class_scores_summarized.
{{ config(materialized='stable_view') }}

{%- set n_bins = var('calibration_bins') %}

with

class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
),

final as (
    select
        class_scores.run_uuid,
        class_scores.score_class as class_label,
        bins.bin_index,
        -- the edges as numpy's linspace(0, 1, n_bins + 1) has them
        bins.bin_index * (cast(1 as {{ dbt.type_float() }}) / {{ n_bins }}) as bin_lower,
        case
            when bins.bin_index = {{ n_bins - 1 }} then cast(1 as {{ dbt.type_float() }})
            else (bins.bin_index + 1) * (cast(1 as {{ dbt.type_float() }}) / {{ n_bins }})
        end as bin_upper,
        bins.n_predictions,
        bins.probability_sum / bins.n_predictions as mean_predicted_probability,
        cast(bins.n_positive as {{ dbt.type_float() }}) / bins.n_predictions as observed_frequency
    from class_scores
    -- the non-empty bins, as stored
    cross join lateral unnest(
        class_scores.calibration_bins,
        class_scores.calibration_counts,
        class_scores.calibration_probability_sums,
        class_scores.calibration_positives
    ) as bins (bin_index, n_predictions, probability_sum, n_positive)
)

select * from final
