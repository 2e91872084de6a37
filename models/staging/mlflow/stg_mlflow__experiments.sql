with

source as (
    select * from {{ source('mlflow', 'experiments') }}
),

renamed as (
    select
        experiment_id,
        name as experiment_name,
        artifact_location,
        lifecycle_stage,
        lifecycle_stage = 'deleted' as is_deleted,
        {{ epoch_ms_to_timestamp('creation_time') }} as created_at,
        {{ epoch_ms_to_timestamp('last_update_time') }} as updated_at
    from source
)

select * from renamed
