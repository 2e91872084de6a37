with

source as (
    select * from {{ source('mlflow', 'registered_model_aliases') }}
),

renamed as (
    select
        {{ mlflow_workspace('registered_model_aliases') }} as workspace,
        name as registered_model_name,
        alias,
        version as model_version
    from source
)

select * from renamed
