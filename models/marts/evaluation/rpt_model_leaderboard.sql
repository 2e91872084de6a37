-- Evaluated runs ranked by macro F1 (then accuracy, then log loss, then the earlier run),
-- within their experiment and within each registered model they were registered to.
-- A partial evaluation (coverage below var min_coverage) ranks after every full one: a run
-- scored on three samples is not compared with runs scored on the whole evaluation set.
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

ranked as (
    select
        flagged.run_uuid,
        flagged.experiment_name,
        flagged.run_name,
        flagged.model_family,
        run_versions.registered_model_name,
        run_versions.model_version,
        coalesce(run_versions.is_champion, false) as is_champion,
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
        rank() over (
            partition by flagged.experiment_name
            order by
                flagged.is_partial_evaluation asc,
                flagged.f1_macro desc, flagged.accuracy desc,
                flagged.log_loss asc nulls last, runs.started_at asc
        ) as experiment_rank,
        case
            when run_versions.registered_model_name is not null
                then rank() over (
                    partition by run_versions.registered_model_name
                    order by
                        flagged.is_partial_evaluation asc,
                        flagged.f1_macro desc, flagged.accuracy desc,
                        flagged.log_loss asc nulls last, runs.started_at asc
                )
        end as registered_model_rank
    from flagged
    inner join runs
        on flagged.run_uuid = runs.run_uuid
    left join run_versions
        on flagged.run_uuid = run_versions.run_uuid
)

select * from ranked
