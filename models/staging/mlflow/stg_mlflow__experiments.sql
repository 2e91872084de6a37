with

source as (
    select * from {{ source('mlflow', 'experiments') }}
),

renamed as (
    select
        -- bigint here and in every staging view: a migrated file store's ids do not fit MLflow's
        -- PostgreSQL integer (sync-mlflow widens the copy's columns; README "The file store")
        cast(experiment_id as {{ dbt.type_bigint() }}) as experiment_id,
        name as experiment_name,
        artifact_location,
        lifecycle_stage,
        lifecycle_stage = 'deleted' as is_deleted,
        {{ epoch_ms_to_timestamp('creation_time') }} as created_at,
        {{ epoch_ms_to_timestamp('last_update_time') }} as updated_at
    from source
)

select * from renamed
