-- A version deleted with MLflow 3's delete_model_version stays in the table as stage
-- Deleted_Internal, its run_id redacted: it is gone for MLflow's own API, and here.
with

source as (
    select * from {{ source('mlflow', 'model_versions') }}
    where current_stage is distinct from 'Deleted_Internal'
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
