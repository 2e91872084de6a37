with

source as (
    select * from {{ source('mlflow', 'metrics') }}
),

renamed as (
    select
        run_uuid,
        key as metric_key,
        step,
        {{ epoch_ms_to_timestamp('"timestamp"') }} as logged_at,
        -- MLflow stores a NaN as 0 with is_nan set; keep it as null with the flag.
        case when is_nan then null else value end as metric_value,
        value as stored_value,
        cast(is_nan as boolean) as is_nan
    from source
)

select * from renamed
