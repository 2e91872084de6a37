-- Every metric MLflow logged for an evaluated run equals the one computed here from the
-- stored predictions (within var metric_tolerance). A row is a run where they disagree.
select
    run_uuid,
    run_name,
    accuracy,
    logged_accuracy,
    f1_weighted,
    logged_f1_weighted,
    log_loss,
    logged_log_loss,
    roc_auc,
    logged_roc_auc
from {{ ref('fct_run_evaluation') }}
where not agrees_with_mlflow
