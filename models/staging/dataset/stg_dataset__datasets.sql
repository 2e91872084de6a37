with

source as (
    select * from {{ source('dataset', 'datasets') }}
),

renamed as (
    select
        dataset_id,
        name as dataset_name
    from source
)

select * from renamed
