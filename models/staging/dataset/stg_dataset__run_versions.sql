with

source as (
    select * from {{ source('dataset', 'run_versions') }}
),

renamed as (
    select
        run_uuid,
        version as run_version
    from source
)

select * from renamed
