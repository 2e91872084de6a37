with

source as (
    select * from {{ ref('datasets') }}
),

renamed as (
    select
        dataset_id,
        name as dataset_name
    from source
)

select * from renamed
