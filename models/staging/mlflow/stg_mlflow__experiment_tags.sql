with

source as (
    select * from {{ source('mlflow', 'experiment_tags') }}
),

renamed as (
    select
        experiment_id,
        key as tag_key,
        value as tag_value
    from source
)

select * from renamed
