with

source as (
    select * from {{ source('mlflow', 'trace_info') }}
),

renamed as (
    select
        request_id,
        cast(experiment_id as {{ dbt.type_bigint() }}) as experiment_id,
        status as trace_status,
        execution_time_ms,
        {{ epoch_ms_to_timestamp('timestamp_ms') }} as started_at
    from source
)

select * from renamed
