-- Each registered model version with its aliases and whether one of them is the champion's
-- (var champion_alias): what both registry dimensions say of a version, defined once.
with

model_versions as (
    select * from {{ ref('stg_mlflow__model_versions') }}
),

aliases as (
    select * from {{ ref('stg_mlflow__registered_model_aliases') }}
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
        version_aliases.aliases,
        coalesce(version_aliases.is_champion, false) as is_champion
    from model_versions
    left join version_aliases
        on
            model_versions.workspace = version_aliases.workspace
            and model_versions.registered_model_name = version_aliases.registered_model_name
            and model_versions.model_version = version_aliases.model_version
)

select * from final
