-- One row per node of design document 002's ML lineage graph: MLflow experiments are
-- Projects, MLflow runs are Experiments, registered model versions are Models, datasets
-- logged to MLflow and the Dataset Database's datasets runs are evaluated on are Datasets,
-- and each run's latest value of a metric key is a Metric.
with

experiments as (
    select * from {{ ref('stg_mlflow__experiments') }}
),

datasets as (
    select * from {{ ref('stg_mlflow__datasets') }}
),

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

runs as (
    select * from {{ ref('stg_mlflow__runs') }}
),

-- the runs of this build, as every mart sees them (int_runs_classified, made once per build):
-- a run MLflow records mid-build is a node of the next build's graph, like its metrics
classified as (
    select * from {{ ref('int_runs_classified') }}
),

latest_metrics as (
    select * from {{ ref('stg_mlflow__latest_metrics') }}
),

evaluation_datasets as (
    select * from {{ ref('stg_dataset__datasets') }}
),

project_nodes as (
    select
        'project:' || experiment_id as node_id,
        'Project' as label,
        experiment_name as name,
        jsonb_build_object(
            'experiment_id', experiment_id,
            'lifecycle_stage', lifecycle_stage,
            'created_at', created_at
        ) as properties
    from experiments
),

dataset_nodes as (
    select
        'dataset:' || dataset_uuid as node_id,
        'Dataset' as label,
        dataset_name as name,
        jsonb_build_object(
            'origin', 'mlflow',
            'dataset_uuid', dataset_uuid,
            'dataset_id', null,
            'experiment_id', experiment_id,
            'digest', dataset_digest,
            'source_type', dataset_source_type,
            'source', dataset_source
        ) as properties
    from datasets
),

-- the Dataset Database's datasets that runs of this build are evaluated on (run_datasets):
-- a run's own dataset even when it logged none to MLflow
evaluation_dataset_nodes as (
    select
        'dataset:database/' || evaluation_datasets.dataset_id as node_id,
        'Dataset' as label,
        evaluation_datasets.dataset_name as name,
        jsonb_build_object(
            'origin', 'dataset_database',
            'dataset_uuid', null,
            'dataset_id', evaluation_datasets.dataset_id,
            'experiment_id', null,
            'digest', null,
            'source_type', null,
            'source', null
        ) as properties
    from evaluation_datasets
    where exists (
        select 1 from classified
        where classified.dataset_id = evaluation_datasets.dataset_id
    )
),

-- registered model names are unique per MLflow workspace: only non-default ones are spelled out
model_nodes as (
    select
        'model:'
        || case when workspace = 'default' then '' else workspace || '/' end
        || registered_model_name || ':' || model_version as node_id,
        'Model' as label,
        registered_model_name || ' v' || model_version as name,
        jsonb_build_object(
            'registered_model_name', registered_model_name,
            'version', model_version,
            'workspace', workspace,
            'run_uuid', run_uuid,
            'status', version_status,
            'aliases', aliases,
            'is_champion', is_champion,
            'created_at', created_at
        ) as properties
    from model_versions
),

experiment_nodes as (
    select
        'experiment:' || classified.run_uuid as node_id,
        'Experiment' as label,
        coalesce(nullif(runs.run_name, ''), classified.run_uuid) as name,
        jsonb_build_object(
            'run_uuid', classified.run_uuid,
            'experiment_id', classified.experiment_id,
            'status', classified.run_status,
            'lifecycle_stage', runs.lifecycle_stage,
            'started_at', runs.started_at,
            'ended_at', runs.ended_at,
            'dataset_id', classified.dataset_id,
            'dataset_name', evaluation_datasets.dataset_name
        ) as properties
    from classified
    inner join runs
        on classified.run_uuid = runs.run_uuid
    left join evaluation_datasets
        on classified.dataset_id = evaluation_datasets.dataset_id
),

metric_nodes as (
    select
        'metric:' || latest_metrics.run_uuid || ':' || latest_metrics.metric_key as node_id,
        'Metric' as label,
        latest_metrics.metric_key as name,
        jsonb_build_object(
            'run_uuid', latest_metrics.run_uuid,
            'metric_key', latest_metrics.metric_key,
            'value', latest_metrics.metric_value,
            'step', latest_metrics.step,
            'is_nan', latest_metrics.is_nan,
            'logged_at', latest_metrics.logged_at
        ) as properties
    from latest_metrics
    inner join classified
        on latest_metrics.run_uuid = classified.run_uuid
),

final as (
    select * from project_nodes
    union all
    select * from dataset_nodes
    union all
    select * from evaluation_dataset_nodes
    union all
    select * from model_nodes
    union all
    select * from experiment_nodes
    union all
    select * from metric_nodes
)

select * from final
