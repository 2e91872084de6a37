-- Every value MLflow logged for every metric, step by step. NaN is kept as a null value
-- with is_nan set; infinite values arrive as MLflow stores them (+/- the largest double).
with

metrics as (
    select * from {{ ref('stg_mlflow__metrics') }}
),

runs as (
    select * from {{ ref('int_runs_classified') }}
),

latest as (
    select * from {{ ref('stg_mlflow__latest_metrics') }}
),

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
)

select * from final
