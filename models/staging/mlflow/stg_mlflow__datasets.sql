with

source as (
    select * from {{ source('mlflow', 'datasets') }}
),

renamed as (
    select
        dataset_uuid,
        cast(experiment_id as {{ dbt.type_bigint() }}) as experiment_id,
        name as dataset_name,
        digest as dataset_digest,
        dataset_source_type,
        dataset_source,
        dataset_schema,
        dataset_profile
    from source
)

select * from renamed
