-- Every metric MLflow logged for an evaluated run, under a key of var mlflow_metric_names,
-- equals the one computed here from the stored predictions (within var metric_tolerance).
-- A row is a run where one does not; compared_mlflow_keys names the keys that were read.
select
    run_uuid,
    run_name,
    compared_mlflow_keys,
    n_predictions,
    logged_example_count,
    accuracy,
    logged_accuracy,
    f1_macro,
    logged_f1_macro,
    f1_weighted,
    logged_f1_weighted,
    log_loss,
    logged_log_loss,
    roc_auc,
    logged_roc_auc
from {{ ref('fct_run_evaluation') }}
where mlflow_agreement = 'disagrees'
