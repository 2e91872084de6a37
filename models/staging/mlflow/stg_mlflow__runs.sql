with

source as (
    select * from {{ source('mlflow', 'runs') }}
),

renamed as (
    select
        run_uuid,
        cast(experiment_id as {{ dbt.type_bigint() }}) as experiment_id,
        name as run_name,
        source_type,
        source_name,
        entry_point_name,
        user_id,
        status as run_status,
        source_version,
        lifecycle_stage,
        lifecycle_stage = 'deleted' as is_deleted,
        artifact_uri,
        {{ epoch_ms_to_timestamp('start_time') }} as started_at,
        {{ epoch_ms_to_timestamp('end_time') }} as ended_at,
        {{ epoch_ms_to_timestamp('deleted_time') }} as deleted_at
    from source
)

select * from renamed
