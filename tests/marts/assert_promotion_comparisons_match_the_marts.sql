-- A promotion decision whose recorded paired comparison (the producer's counts, and its p-value
-- from SciPy) differs from fct_run_comparisons' on the same two runs. The mart compares each
-- run with its reference now, so only the decisions whose holder is still that reference are
-- checked: a challenger judged against the champion that still holds the alias.
with

decisions as (
    select * from {{ ref('fct_promotion_decisions') }}
),

comparisons as (
    select * from {{ ref('fct_run_comparisons') }}
)

select
    decisions.registered_model_name,
    decisions.model_version,
    decisions.run_uuid,
    decisions.holder_run_uuid,
    decisions.n_paired,
    comparisons.n_paired as n_paired_in_comparisons,
    decisions.n_candidate_only_correct,
    comparisons.n_run_only_correct,
    decisions.n_holder_only_correct,
    comparisons.n_reference_only_correct,
    decisions.mcnemar_p_value,
    comparisons.mcnemar_p_value as mcnemar_p_value_in_comparisons
from decisions
inner join comparisons
    on
        decisions.run_uuid = comparisons.run_uuid
        and decisions.holder_run_uuid = comparisons.reference_run_uuid
where
    decisions.n_paired is not null
    and (
        decisions.n_paired is distinct from comparisons.n_paired
        or decisions.n_candidate_only_correct is distinct from comparisons.n_run_only_correct
        or decisions.n_holder_only_correct is distinct from comparisons.n_reference_only_correct
        or decisions.mcnemar_p_value is null
        -- 1e-9 relative, or 1e-12 absolute for the p-values below 1e-3 (the level is 0.05)
        or abs(decisions.mcnemar_p_value - comparisons.mcnemar_p_value)
        > greatest(1e-12, 1e-9 * greatest(decisions.mcnemar_p_value, comparisons.mcnemar_p_value))
    )
