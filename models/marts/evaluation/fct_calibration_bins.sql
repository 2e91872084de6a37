-- The reliability diagram of each class of each evaluated run (one-vs-rest): the predictions'
-- probabilities of the class in var('calibration_bins') uniform bins, as scikit-learn's
-- calibration_curve(y_true == class, probability of the class, n_bins=10) bins them; per
-- non-empty bin the observed frequency of the class (prob_true), the mean probability
-- (prob_pred) and the count. A view over the arrays of int_run_class_scores_summarized.
{{ config(materialized='view') }}

{%- set n_bins = var('calibration_bins') %}

with

class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
),

final as (
    select
        class_scores.run_uuid,
        class_scores.score_class as class_label,
        cast(bins.bin_index as integer) as bin_index,
        -- the edges as numpy's linspace(0, 1, n_bins + 1) has them
        bins.bin_index * (cast(1 as {{ dbt.type_float() }}) / {{ n_bins }}) as bin_lower,
        case
            when bins.bin_index = {{ n_bins - 1 }} then cast(1 as {{ dbt.type_float() }})
            else (bins.bin_index + 1) * (cast(1 as {{ dbt.type_float() }}) / {{ n_bins }})
        end as bin_upper,
        class_scores.calibration_counts[bins.bin_index + 1] as n_predictions,
        class_scores.calibration_probability_sums[bins.bin_index + 1]
        / class_scores.calibration_counts[bins.bin_index + 1] as mean_predicted_probability,
        cast(class_scores.calibration_positives[bins.bin_index + 1] as {{ dbt.type_float() }})
        / class_scores.calibration_counts[bins.bin_index + 1] as observed_frequency
    from class_scores
    cross join lateral generate_series(0, {{ n_bins - 1 }}) as bins (bin_index)
    where class_scores.calibration_counts[bins.bin_index + 1] > 0
)

select * from final
