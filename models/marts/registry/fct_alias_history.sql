-- Who held each alias when: the snapshot of MLflow's aliases, one row per alias and version
-- it pointed at, with the run behind the version and the promotion decision that put it there
-- (none when the alias was set by hand or by another tool).
with

snapshot as (
    select * from {{ ref('snap_registered_model_aliases') }}
),

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

decisions as (
    select * from {{ ref('fct_promotion_decisions') }}
),

final as (
    select
        snapshot.dbt_scd_id as alias_history_id,
        snapshot.workspace,
        snapshot.registered_model_name,
        snapshot.alias,
        snapshot.model_version,
        model_versions.run_uuid,
        snapshot.dbt_valid_from as valid_from,
        snapshot.dbt_valid_to as valid_to,
        snapshot.dbt_valid_to is null as is_current,
        decisions.decision as promotion_decision,
        decisions.reason as promotion_reason
    from snapshot
    left join model_versions
        on
            snapshot.workspace = model_versions.workspace
            and snapshot.registered_model_name = model_versions.registered_model_name
            and snapshot.model_version = model_versions.model_version
    left join decisions
        on
            snapshot.workspace = decisions.workspace
            and snapshot.registered_model_name = decisions.registered_model_name
            and snapshot.model_version = decisions.model_version
)

select * from final
