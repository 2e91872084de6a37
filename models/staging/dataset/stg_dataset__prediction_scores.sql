with

source as (
    select * from {{ source('dataset', 'prediction_scores') }}
),

renamed as (
    select
        prediction_id,
        class as score_class,
        probability
    from source
)

select * from renamed
