with

source as (
    select * from {{ source('mlflow', 'registered_models') }}
),

renamed as (
    select
        -- MLflow 3.x keys the registry by workspace; 2.x has one implicit 'default'.
        {{ mlflow_workspace('registered_models') }} as workspace,
        name as registered_model_name,
        description,
        {{ epoch_ms_to_timestamp('creation_time') }} as created_at,
        {{ epoch_ms_to_timestamp('last_updated_time') }} as updated_at
    from source
)

select * from renamed
