with

source as (
    select * from {{ source('mlflow', 'model_version_tags') }}
),

renamed as (
    select
        {{ mlflow_workspace('model_version_tags') }} as workspace,
        name as registered_model_name,
        version as model_version,
        key as tag_key,
        value as tag_value
    from source
)

select * from renamed
