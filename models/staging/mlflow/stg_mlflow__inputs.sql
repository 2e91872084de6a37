with

source as (
    select * from {{ source('mlflow', 'inputs') }}
),

renamed as (
    select
        input_uuid,
        source_type,
        source_id,
        destination_type,
        destination_id,
        -- `step` arrived in MLflow 3.x; 2.x inputs are all step 0.
        {{ column_or_default(source('mlflow', 'inputs'), 'step', 'cast(0 as bigint)') }} as step
    from source
)

select * from renamed
