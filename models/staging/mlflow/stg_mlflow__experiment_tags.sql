with

source as (
    select * from {{ source('mlflow', 'experiment_tags') }}
),

renamed as (
    select
        cast(experiment_id as {{ dbt.type_bigint() }}) as experiment_id,
        key as tag_key,
        value as tag_value
    from source
)

select * from renamed
