with

source as (
    select * from {{ source('mlflow', 'alembic_version') }}
),

renamed as (
    select version_num as alembic_revision
    from source
)

select * from renamed
