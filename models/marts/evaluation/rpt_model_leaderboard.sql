-- Evaluated runs ranked by macro F1 (then accuracy, then log loss, then the earlier run),
-- within their experiment and within each registered model they were registered to.
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

ranked as (
    select
        evaluation.run_uuid,
        evaluation.experiment_name,
        evaluation.run_name,
        evaluation.model_family,
        run_versions.registered_model_name,
        run_versions.model_version,
        coalesce(run_versions.is_champion, false) as is_champion,
        evaluation.n_predictions,
        evaluation.accuracy,
        evaluation.balanced_accuracy,
        evaluation.f1_macro,
        evaluation.f1_weighted,
        evaluation.log_loss,
        evaluation.roc_auc,
        evaluation.agrees_with_mlflow,
        runs.started_at,
        rank() over (
            partition by evaluation.experiment_name
            order by
                evaluation.f1_macro desc, evaluation.accuracy desc,
                evaluation.log_loss asc nulls last, runs.started_at asc
        ) as experiment_rank,
        case
            when run_versions.registered_model_name is not null
                then rank() over (
                    partition by run_versions.registered_model_name
                    order by
                        evaluation.f1_macro desc, evaluation.accuracy desc,
                        evaluation.log_loss asc nulls last, runs.started_at asc
                )
        end as registered_model_rank
    from evaluation
    inner join runs
        on evaluation.run_uuid = runs.run_uuid
    left join run_versions
        on evaluation.run_uuid = run_versions.run_uuid
)

select * from ranked
