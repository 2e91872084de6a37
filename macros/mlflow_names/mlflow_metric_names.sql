{#- var mlflow_metric_names, checked: every compared metric (compared_metric_columns, in
    order) -> its MLflow keys in order of preference ([] for a metric the var leaves out). An
    unknown metric, a value that is not a list of keys, or the var's old name
    (mlflow_metric_keys, one key per metric) still set stops the compilation with one line. -#}
{% macro mlflow_metric_names() %}
    {% if var('mlflow_metric_keys', none) is not none %}
        {{ exceptions.raise_compiler_error(
            'var mlflow_metric_keys is now mlflow_metric_names: each metric maps to a list of'
            ~ ' MLflow keys in order of preference, e.g. {accuracy: [accuracy_score, accuracy]}'
        ) }}
    {% endif %}
    {% set declared = var('mlflow_metric_names') %}
    {% if declared is not mapping %}
        {{ exceptions.raise_compiler_error(
            'var mlflow_metric_names must map metrics to lists of MLflow keys, not ' ~ tojson(declared)
        ) }}
    {% endif %}
    {% set columns = compared_metric_columns() %}
    {% for metric in declared if metric not in columns %}
        {{ exceptions.raise_compiler_error(
            'var mlflow_metric_names: ' ~ tojson(metric) ~ ' is not a metric fct_run_evaluation compares ('
            ~ columns.keys() | join(', ') ~ ')'
        ) }}
    {% endfor %}
    {% set names = {} %}
    {% for metric in columns %}
        {% do names.update({metric: key_list(declared.get(metric), 'var mlflow_metric_names.' ~ metric)}) %}
    {% endfor %}
    {{ return(names) }}
{% endmacro %}
