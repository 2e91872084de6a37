with

source as (
    select * from {{ source('mlflow', 'latest_metrics') }}
),

renamed as (
    select
        run_uuid,
        key as metric_key,
        step,
        {{ epoch_ms_to_timestamp('"timestamp"') }} as logged_at,
        case when is_nan then null else value end as metric_value,
        value as stored_value,
        cast(is_nan as boolean) as is_nan
    from source
)

select * from renamed
