with

source as (
    select * from {{ source('mlflow', 'input_tags') }}
),

renamed as (
    select
        input_uuid,
        name as tag_key,
        value as tag_value
    from source
)

select * from renamed
