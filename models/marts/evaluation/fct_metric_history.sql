-- Every value MLflow logged for every metric, step by step. NaN is kept as a null value
-- with is_nan set; infinite values arrive as MLflow stores them (+/- the largest double).
-- Incremental by run: a build rewrites the runs whose input fingerprint changed (a value
-- logged, changed or deleted, or the run's evaluated flag), and drops the runs gone from MLflow.
{{ config(**run_keyed_incremental(runs_model='int_runs_classified')) }}

with

metrics as (
    select * from {{ ref('stg_mlflow__metrics') }}
),

-- the columns used: the view counts a run's predictions only when that is selected
runs as (
    select
        run_uuid,
        is_evaluated
    from {{ ref('int_runs_classified') }}
),

latest as (
    select * from {{ ref('stg_mlflow__latest_metrics') }}
),

{% if is_incremental() -%}
    -- runs that are new or whose values or evaluated flag changed since this model built them
    changed_runs as (
        select runs.run_uuid
        from runs
        where {{ run_is_new('runs.run_uuid') }}
    ),

{% endif -%}

final as (
    select
        {{ dbt.hash(dbt.concat([
            'metrics.run_uuid', "'|'", 'metrics.metric_key', "'|'",
            dbt.safe_cast('metrics.step', dbt.type_string()), "'|'",
            dbt.safe_cast('metrics.logged_at', dbt.type_string()), "'|'",
            dbt.safe_cast('metrics.stored_value', dbt.type_string()), "'|'",
            dbt.safe_cast('metrics.is_nan', dbt.type_string()),
        ])) }} as metric_history_id,
        metrics.run_uuid,
        metrics.metric_key,
        metrics.step,
        metrics.logged_at,
        metrics.metric_value,
        metrics.is_nan,
        -- MLflow stores +-inf as +-the largest double; sums and averages overflow on it
        coalesce(abs(metrics.stored_value) = 1.7976931348623157e308, false) as is_infinite,
        runs.is_evaluated as is_evaluated_run,
        coalesce(
            latest.step = metrics.step
            and latest.logged_at = metrics.logged_at
            and latest.stored_value = metrics.stored_value,
            false
        ) as is_latest
    from metrics
    inner join runs
        on metrics.run_uuid = runs.run_uuid
    left join latest
        on
            metrics.run_uuid = latest.run_uuid
            and metrics.metric_key = latest.metric_key
    {%- if is_incremental() %}
        where {{ run_uuid_in('select changed_runs.run_uuid from changed_runs', column='metrics.run_uuid') }}
    {%- endif %}
)

select * from final
