-- The quality gates of severity error that fail now (rpt_quality_gates): one row each, whose
-- message names the gate and the model (the build prints it: macros/quality_gates/).
select
    workspace,
    registered_model_name,
    gate,
    measure,
    observed_value,
    threshold,
    message
from {{ ref('rpt_quality_gates') }}
where severity = 'error' and not is_passing
