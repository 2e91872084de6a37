with

source as (
    select * from {{ source('mlflow', 'trace_request_metadata') }}
),

renamed as (
    select
        request_id,
        key as metadata_key,
        value as metadata_value
    from source
)

select * from renamed
