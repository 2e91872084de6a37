-- One row per registered model: what `ml-eval metrics` exports to Prometheus. Its champion's
-- metrics, how many of its runs are evaluated and when the newest started, and its gates.
with

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

evaluation as (
    select * from {{ ref('fct_run_evaluation') }}
),

gates as (
    select * from {{ ref('rpt_quality_gates') }}
),

evaluated_runs as (
    select
        model_versions.workspace,
        model_versions.registered_model_name,
        count(distinct evaluation.run_uuid) as n_evaluated_runs,
        max(evaluation.started_at) as newest_evaluated_run_at
    from model_versions
    inner join evaluation
        on model_versions.run_uuid = evaluation.run_uuid
    group by model_versions.workspace, model_versions.registered_model_name
),

gate_counts as (
    select
        workspace,
        registered_model_name,
        count(*) as n_gates,
        count(*) filter (where not is_passing) as n_failing_gates
    from gates
    group by workspace, registered_model_name
),

registered_models as (
    select
        workspace,
        registered_model_name,
        max(model_version) filter (where is_champion) as champion_model_version
    from model_versions
    group by workspace, registered_model_name
),

final as (
    select
        registered_models.workspace,
        registered_models.registered_model_name,
        registered_models.champion_model_version,
        champion_versions.run_uuid as champion_run_uuid,
        {%- for metric in var('metric_directions') %}
            champion_evaluation.{{ metric }} as champion_{{ metric }},
        {%- endfor %}
        coalesce(evaluated_runs.n_evaluated_runs, 0) as n_evaluated_runs,
        evaluated_runs.newest_evaluated_run_at,
        coalesce(gate_counts.n_gates, 0) as n_gates,
        coalesce(gate_counts.n_failing_gates, 0) as n_failing_gates
    from registered_models
    left join model_versions as champion_versions
        on
            registered_models.workspace = champion_versions.workspace
            and registered_models.registered_model_name = champion_versions.registered_model_name
            and registered_models.champion_model_version = champion_versions.model_version
    left join evaluation as champion_evaluation
        on champion_versions.run_uuid = champion_evaluation.run_uuid
    left join evaluated_runs
        on
            registered_models.workspace = evaluated_runs.workspace
            and registered_models.registered_model_name = evaluated_runs.registered_model_name
    left join gate_counts
        on
            registered_models.workspace = gate_counts.workspace
            and registered_models.registered_model_name = gate_counts.registered_model_name
)

select * from final
