-- One row per registered model version, with its aliases and the run it came from.
with

model_versions as (
    select * from {{ ref('int_model_versions_aliased') }}
),

registered_models as (
    select * from {{ ref('stg_mlflow__registered_models') }}
),

final as (
    select
        model_versions.workspace,
        model_versions.registered_model_name,
        model_versions.model_version,
        model_versions.run_uuid,
        model_versions.version_status,
        model_versions.current_stage,
        model_versions.model_source,
        model_versions.created_at,
        registered_models.description as registered_model_description,
        model_versions.aliases,
        model_versions.is_champion
    from model_versions
    left join registered_models
        on
            model_versions.workspace = registered_models.workspace
            and model_versions.registered_model_name = registered_models.registered_model_name
)

select * from final
