with

source as (
    select * from {{ source('dataset', 'dataset_versions') }}
),

renamed as (
    select
        dataset_id,
        version as dataset_version
    from source
)

select * from renamed
