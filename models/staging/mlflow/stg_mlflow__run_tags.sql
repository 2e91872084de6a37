with

source as (
    select * from {{ source('mlflow', 'tags') }}
),

renamed as (
    select
        run_uuid,
        key as tag_key,
        value as tag_value
    from source
)

select * from renamed
