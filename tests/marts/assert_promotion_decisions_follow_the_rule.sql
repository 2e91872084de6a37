-- A decision the SQL copy of the promotion rule would not have made from the same values.
select
    registered_model_name,
    model_version,
    decision,
    rule_decision,
    promotion_metric,
    margin,
    candidate_value,
    holder_model_version,
    holder_value,
    is_same_evaluation_samples,
    max_p_value,
    n_candidate_only_correct,
    n_holder_only_correct,
    mcnemar_p_value
from {{ ref('fct_promotion_decisions') }}
where not agrees_with_rule
