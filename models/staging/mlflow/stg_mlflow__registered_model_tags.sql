with

source as (
    select * from {{ source('mlflow', 'registered_model_tags') }}
),

renamed as (
    select
        {{ mlflow_workspace('registered_model_tags') }} as workspace,
        name as registered_model_name,
        key as tag_key,
        value as tag_value
    from source
)

select * from renamed
