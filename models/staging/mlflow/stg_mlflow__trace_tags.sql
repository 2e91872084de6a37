with

source as (
    select * from {{ source('mlflow', 'trace_tags') }}
),

renamed as (
    select
        request_id,
        key as tag_key,
        value as tag_value
    from source
)

select * from renamed
