with

source as (
    select * from {{ source('dataset', 'run_datasets') }}
),

renamed as (
    select
        run_uuid,
        dataset_id
    from source
)

select * from renamed
