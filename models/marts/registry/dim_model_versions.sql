-- One row per registered model version, with its aliases and the run it came from.
with

model_versions as (
    select * from {{ ref('stg_mlflow__model_versions') }}
),

aliases as (
    select * from {{ ref('stg_mlflow__registered_model_aliases') }}
),

registered_models as (
    select * from {{ ref('stg_mlflow__registered_models') }}
),

version_aliases as (
    select
        workspace,
        registered_model_name,
        model_version,
        string_agg(alias, ', ' order by alias) as aliases,
        bool_or(alias = {{ sql_string(var('champion_alias')) }}) as is_champion
    from aliases
    group by workspace, registered_model_name, model_version
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
        version_aliases.aliases,
        coalesce(version_aliases.is_champion, false) as is_champion
    from model_versions
    left join registered_models
        on
            model_versions.workspace = registered_models.workspace
            and model_versions.registered_model_name = registered_models.registered_model_name
    left join version_aliases
        on
            model_versions.workspace = version_aliases.workspace
            and model_versions.registered_model_name = version_aliases.registered_model_name
            and model_versions.model_version = version_aliases.model_version
)

select * from final
