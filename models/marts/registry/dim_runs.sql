-- One row per MLflow run: its experiment, params and tags (as JSON objects), the model
-- versions registered from it and their aliases, whether it was evaluated, and on which dataset.

{#- the run tags that may name the family and hold the git commit, in order of preference
    (vars model_family_tags, git_commit_tags): a run's value is its first of them -#}
{%- set family_tags = run_tag_keys('model_family_tags', renamed_from='model_family_tag') %}
{%- set git_commit_tags = run_tag_keys('git_commit_tags') %}

with

runs as (
    select * from {{ ref('stg_mlflow__runs') }}
),

experiments as (
    select * from {{ ref('stg_mlflow__experiments') }}
),

params as (
    select * from {{ ref('stg_mlflow__params') }}
),

run_tags as (
    select * from {{ ref('stg_mlflow__run_tags') }}
),

model_versions as (
    select * from {{ ref('int_model_versions_aliased') }}
),

classified as (
    select * from {{ ref('int_runs_classified') }}
),

prediction_counts as (
    select * from {{ ref('int_run_predictions_counted') }}
),

datasets as (
    select * from {{ ref('stg_dataset__datasets') }}
),

param_objects as (
    select
        run_uuid,
        jsonb_object_agg(param_key, param_value order by param_key) as params
    from params
    group by run_uuid
),

tag_objects as (
    select
        run_uuid,
        jsonb_object_agg(tag_key, tag_value order by tag_key) as tags,
        {{ first_tag_value(family_tags) }} as model_family,
        {{ first_tag_value(git_commit_tags) }} as git_commit
    from run_tags
    group by run_uuid
),

registrations as (
    select
        run_uuid,
        string_agg(
            registered_model_name || ' v' || model_version, ', '
            order by registered_model_name, model_version
        ) as registered_versions,
        string_agg(aliases, ', ' order by registered_model_name, model_version)
        filter (where aliases is not null) as aliases,
        bool_or(is_champion) as is_champion
    from model_versions
    group by run_uuid
),

final as (
    select
        classified.run_uuid,
        runs.run_name,
        classified.experiment_id,
        experiments.experiment_name,
        classified.run_status,
        runs.is_deleted,
        runs.user_id,
        runs.source_name,
        runs.started_at,
        runs.ended_at,
        {{ duration_seconds('runs.started_at', 'runs.ended_at') }} as duration_seconds,
        tag_objects.model_family,
        tag_objects.git_commit,
        coalesce(param_objects.params, cast('{}' as jsonb)) as params,
        coalesce(tag_objects.tags, cast('{}' as jsonb)) as tags,
        registrations.registered_versions,
        registrations.aliases,
        coalesce(registrations.is_champion, false) as is_champion,
        -- the producer's rows for the run, evaluated or not (0: none)
        coalesce(prediction_counts.n_predictions, 0) as n_predictions,
        classified.is_evaluated,
        classified.exclusion_reason,
        classified.dataset_id,
        datasets.dataset_name
    -- the runs of this build (int_runs_classified, a table made once per build), not the
    -- live view: a run MLflow records mid-build waits for the next build in every mart
    from classified
    inner join runs
        on classified.run_uuid = runs.run_uuid
    left join experiments
        on classified.experiment_id = experiments.experiment_id
    left join param_objects
        on classified.run_uuid = param_objects.run_uuid
    left join tag_objects
        on classified.run_uuid = tag_objects.run_uuid
    left join registrations
        on classified.run_uuid = registrations.run_uuid
    left join prediction_counts
        on classified.run_uuid = prediction_counts.run_uuid
    left join datasets
        on classified.dataset_id = datasets.dataset_id
)

select * from final
