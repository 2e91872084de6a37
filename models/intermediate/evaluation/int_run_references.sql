-- The run each evaluated run is compared with (fct_run_comparisons): the champion of its
-- ranking group, the version holding the champion alias of the registered model the
-- leaderboard lists the run under, when that version's run is evaluated on the run's dataset;
-- otherwise (a run never registered, a model without a champion on that dataset) the top
-- run of the run's experiment on its dataset, by the leaderboard's ranking
-- (macros/leaderboard_ranking.sql: this model cannot read the leaderboard, which reads the
-- comparisons). The reference is compared with itself too.
-- The comparison's input fingerprint says what a comparison is made of: the run's inputs,
-- which run it is compared with and that run's inputs, and the significance level; the
-- incremental comparison compares a run again when it changes (the champion moved, a better
-- run became the experiment's top, either run's predictions changed).
-- A table of a row per run: the comparison's hooks read it several times per build.
{{ config(
    materialized='table',
    indexes=[{'columns': ['run_uuid'], 'unique': true}],
    post_hook='analyze {{ this }}',
) }}

with

evaluated_runs as (
    select * from {{ ref('int_runs_evaluated') }}
),

evaluation as (
    select * from {{ ref('fct_run_evaluation') }}
),

runs as (
    select * from {{ ref('dim_runs') }}
),

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

-- the leaderboard's columns of every evaluated run, its ranking's among them
ranked_runs as (
    select
        evaluated_runs.run_uuid,
        evaluated_runs.experiment_id,
        evaluated_runs.dataset_id,
        evaluated_runs.input_fingerprint,
        evaluation.coverage < {{ var('min_coverage') }} as is_partial_evaluation,
        evaluation.f1_macro,
        evaluation.accuracy,
        evaluation.log_loss,
        runs.started_at
    from evaluated_runs
    inner join evaluation
        on evaluated_runs.run_uuid = evaluation.run_uuid
    inner join runs
        on evaluated_runs.run_uuid = runs.run_uuid
),

-- as rpt_model_leaderboard lists it: a run registered more than once is listed under its
-- champion version, else its latest
run_versions as (
    select distinct on (run_uuid)
        run_uuid,
        registered_model_name
    from model_versions
    order by run_uuid asc, is_champion desc, created_at desc, model_version desc
),

-- each registered model's champion, per dataset its run is evaluated on (one, but for a
-- model registered in several MLflow workspaces under one name: the latest)
champions as (
    select distinct on (model_versions.registered_model_name, ranked_runs.dataset_id)
        model_versions.registered_model_name,
        ranked_runs.dataset_id,
        ranked_runs.run_uuid
    from model_versions
    inner join ranked_runs
        on model_versions.run_uuid = ranked_runs.run_uuid
    where model_versions.is_champion
    order by
        model_versions.registered_model_name asc,
        ranked_runs.dataset_id asc,
        model_versions.created_at desc,
        model_versions.model_version desc
),

-- each experiment's top run on each dataset (ties of the whole ranking: the lower run_uuid)
experiment_tops as (
    select distinct on (experiment_id, dataset_id)
        experiment_id,
        dataset_id,
        run_uuid
    from ranked_runs
    order by experiment_id asc, dataset_id asc, {{ leaderboard_ranking() }}, run_uuid asc
),

referenced as (
    select
        ranked_runs.run_uuid,
        ranked_runs.dataset_id,
        ranked_runs.input_fingerprint as run_input_fingerprint,
        coalesce(champions.run_uuid, experiment_tops.run_uuid) as reference_run_uuid,
        case when champions.run_uuid is not null then 'champion' else 'experiment_top' end as reference_kind
    from ranked_runs
    left join run_versions
        on ranked_runs.run_uuid = run_versions.run_uuid
    left join champions
        on
            run_versions.registered_model_name = champions.registered_model_name
            and ranked_runs.dataset_id = champions.dataset_id
    inner join experiment_tops
        on
            ranked_runs.experiment_id = experiment_tops.experiment_id
            and ranked_runs.dataset_id = experiment_tops.dataset_id
),

final as (
    select
        referenced.run_uuid,
        referenced.reference_run_uuid,
        referenced.reference_kind,
        referenced.dataset_id,
        {{ dbt.hash(dbt.concat([
            'referenced.run_input_fingerprint', "'|'",
            'referenced.reference_run_uuid', "'|'",
            'reference_runs.input_fingerprint', "'|'",
            'referenced.reference_kind', "'|'",
            sql_string(var('comparison_alpha') | string),
        ])) }} as input_fingerprint
    from referenced
    inner join evaluated_runs as reference_runs
        on referenced.reference_run_uuid = reference_runs.run_uuid
)

select * from final
