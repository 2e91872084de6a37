{#- The metrics fct_run_evaluation can compare with a value MLflow logged, in the mart's order:
    each name (the keys var mlflow_metric_names may have; the mart's logged_<name> column) ->
    the computed column it is compared with. -#}
{% macro compared_metric_columns() %}
    {{ return({
        'example_count': 'n_predictions',
        'accuracy': 'accuracy',
        'balanced_accuracy': 'balanced_accuracy',
        'precision_macro': 'precision_macro',
        'recall_macro': 'recall_macro',
        'f1_macro': 'f1_macro',
        'precision_weighted': 'precision_weighted',
        'recall_weighted': 'recall_weighted',
        'f1_weighted': 'f1_weighted',
        'cohen_kappa': 'cohen_kappa',
        'mcc': 'mcc',
        'log_loss': 'log_loss',
        'roc_auc': 'roc_auc',
    }) }}
{% endmacro %}
