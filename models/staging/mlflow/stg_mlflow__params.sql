with

source as (
    select * from {{ source('mlflow', 'params') }}
),

renamed as (
    select
        run_uuid,
        key as param_key,
        value as param_value
    from source
)

select * from renamed
