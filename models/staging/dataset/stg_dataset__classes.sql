with

source as (
    select * from {{ source('dataset', 'classes') }}
),

renamed as (
    select
        dataset_id,
        class as class_label,
        label as label_name
    from source
)

select * from renamed
