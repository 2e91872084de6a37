with

source as (
    select * from {{ source('mlflow', 'model_versions') }}
),

renamed as (
    select
        {{ mlflow_workspace('model_versions') }} as workspace,
        name as registered_model_name,
        version as model_version,
        run_id as run_uuid,
        description,
        user_id,
        current_stage,
        source as model_source,
        status as version_status,
        status_message,
        run_link,
        storage_location,
        {{ epoch_ms_to_timestamp('creation_time') }} as created_at,
        {{ epoch_ms_to_timestamp('last_updated_time') }} as updated_at
    from source
)

select * from renamed
