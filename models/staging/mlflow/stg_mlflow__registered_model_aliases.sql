with

source as (
    select * from {{ source('mlflow', 'registered_model_aliases') }}
),

renamed as (
    select
        {{ column_or_default(source('mlflow', 'registered_model_aliases'), 'workspace', "cast('default' as varchar)") }} as workspace,
        name as registered_model_name,
        alias,
        version as model_version
    from source
)

select * from renamed
