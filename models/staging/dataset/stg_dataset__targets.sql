with

source as (
    select * from {{ source('dataset', 'targets') }}
),

renamed as (
    select
        target_id,
        sample_index,
        target_index,
        class as actual_class
    from source
)

select * from renamed
