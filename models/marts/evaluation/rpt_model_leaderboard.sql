-- Evaluated runs ranked by macro F1 (then accuracy, then log loss, then the earlier run),
-- within their experiment and within each registered model they were registered to.
-- A partial evaluation (coverage below var min_coverage) ranks after every full one: a run
-- scored on three samples is not compared with runs scored on the whole evaluation set.
-- Each run also belongs to one ranking group, what the report gives a section of its own:
-- its registered model, or its experiment when it was never registered, and its dataset
-- (runs scored on other targets are not comparable). Several models, experiments and
-- datasets side by side each have their own best run; none is "the" best.
-- Each run's paired comparison with its reference (fct_run_comparisons: the champion, else
-- the experiment's top run) says whether it beats it beyond chance.
with

evaluation as (
    select * from {{ ref('fct_run_evaluation') }}
),

runs as (
    select * from {{ ref('dim_runs') }}
),

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

comparisons as (
    select * from {{ ref('fct_run_comparisons') }}
),

-- a run registered more than once is listed under its champion version, else its latest
run_versions as (
    select distinct on (run_uuid)
        run_uuid,
        registered_model_name,
        model_version,
        is_champion
    from model_versions
    order by run_uuid asc, is_champion desc, created_at desc, model_version desc
),

flagged as (
    select
        *,
        coverage < {{ var('min_coverage') }} as is_partial_evaluation
    from evaluation
),

grouped as (
    select
        flagged.run_uuid,
        flagged.experiment_name,
        flagged.run_name,
        flagged.model_family,
        flagged.n_predictions,
        flagged.coverage,
        flagged.is_partial_evaluation,
        flagged.accuracy,
        flagged.balanced_accuracy,
        flagged.f1_macro,
        flagged.f1_weighted,
        flagged.log_loss,
        flagged.roc_auc,
        flagged.agrees_with_mlflow,
        runs.started_at,
        runs.dataset_id,
        runs.dataset_name,
        run_versions.registered_model_name,
        run_versions.model_version,
        coalesce(run_versions.is_champion, false) as is_champion,
        case
            when run_versions.registered_model_name is not null then 'registered_model'
            else 'experiment'
        end as group_kind,
        coalesce(run_versions.registered_model_name, flagged.experiment_name) as group_name
    from flagged
    inner join runs
        on flagged.run_uuid = runs.run_uuid
    left join run_versions
        on flagged.run_uuid = run_versions.run_uuid
),

-- one ordering for every rank (macros/leaderboard_ranking.sql): a partial evaluation after
-- every full one, then the metrics
{%- set ranking = leaderboard_ranking() %}

ranked as (
    select
        run_uuid,
        experiment_name,
        run_name,
        model_family,
        registered_model_name,
        model_version,
        is_champion,
        n_predictions,
        coverage,
        is_partial_evaluation,
        accuracy,
        balanced_accuracy,
        f1_macro,
        f1_weighted,
        log_loss,
        roc_auc,
        agrees_with_mlflow,
        started_at,
        rank() over (partition by experiment_name order by {{ ranking }}) as experiment_rank,
        case
            when registered_model_name is not null
                then rank() over (partition by registered_model_name order by {{ ranking }})
        end as registered_model_rank,
        dataset_id,
        dataset_name,
        group_kind,
        group_name,
        rank() over (partition by group_kind, group_name, dataset_id order by {{ ranking }}) as group_rank
    from grouped
),

final as (
    select
        ranked.*,
        comparisons.reference_run_uuid,
        comparisons.mcnemar_p_value,
        comparisons.is_better_beyond_chance as beats_champion_beyond_chance
    from ranked
    left join comparisons
        on ranked.run_uuid = comparisons.run_uuid
)

select * from final
