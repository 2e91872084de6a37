with

source as (
    select * from {{ source('dataset', 'predictions') }}
),

renamed as (
    select
        prediction_id,
        run_uuid,
        sample_index,
        prediction_index,
        class as predicted_class
    from source
)

select * from renamed
