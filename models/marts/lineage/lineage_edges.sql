-- One row per relationship of design document 002's ML lineage graph, between the node ids
-- of lineage_nodes (built here with the same formulas; tests check every end exists there).
with

datasets as (
    select * from {{ ref('stg_mlflow__datasets') }}
),

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

-- the runs of this build, as every mart sees them (int_runs_classified, made once per build)
runs as (
    select * from {{ ref('int_runs_classified') }}
),

inputs as (
    select * from {{ ref('stg_mlflow__inputs') }}
),

input_tags as (
    select * from {{ ref('stg_mlflow__input_tags') }}
),

latest_metrics as (
    select * from {{ ref('stg_mlflow__latest_metrics') }}
),

models as (
    select
        'model:'
        || case when workspace = 'default' then '' else workspace || '/' end
        || registered_model_name || ':' || model_version as model_node_id,
        run_uuid
    from model_versions
),

-- a run's evaluation (test) datasets are inputs too: a model is trained on the ones
-- logged with context `training`, or with no context at all
training_inputs as (
    select
        inputs.source_id as dataset_uuid,
        inputs.destination_id as run_uuid
    from inputs
    left join input_tags
        on
            inputs.input_uuid = input_tags.input_uuid
            and input_tags.tag_key = 'mlflow.data.context'
    where
        inputs.source_type = 'DATASET'
        and inputs.destination_type = 'RUN'
        and coalesce(input_tags.tag_value, 'training') = 'training'
),

project_has_dataset as (
    select
        'project:' || experiment_id as from_node_id,
        'HAS' as relationship,
        'dataset:' || dataset_uuid as to_node_id,
        'Project' as from_label,
        'Dataset' as to_label
    from datasets
),

-- the Dataset Database's datasets the experiment's runs are evaluated on (run_datasets)
project_has_evaluation_dataset as (
    select distinct
        'project:' || experiment_id as from_node_id,
        'HAS' as relationship,
        'dataset:database/' || dataset_id as to_node_id,
        'Project' as from_label,
        'Dataset' as to_label
    from runs
    where dataset_id is not null
),

project_has_model as (
    select
        'project:' || runs.experiment_id as from_node_id,
        'HAS' as relationship,
        models.model_node_id as to_node_id,
        'Project' as from_label,
        'Model' as to_label
    from models
    inner join runs
        on models.run_uuid = runs.run_uuid
),

model_trained_on_dataset as (
    select distinct
        models.model_node_id as from_node_id,
        'TRAINED_ON' as relationship,
        'dataset:' || datasets.dataset_uuid as to_node_id,
        'Model' as from_label,
        'Dataset' as to_label
    from models
    inner join training_inputs
        on models.run_uuid = training_inputs.run_uuid
    inner join datasets
        on training_inputs.dataset_uuid = datasets.dataset_uuid
),

experiment_run_model as (
    select
        'experiment:' || runs.run_uuid as from_node_id,
        'RUN' as relationship,
        models.model_node_id as to_node_id,
        'Experiment' as from_label,
        'Model' as to_label
    from models
    inner join runs
        on models.run_uuid = runs.run_uuid
),

experiment_has_metric as (
    select
        'experiment:' || latest_metrics.run_uuid as from_node_id,
        'HAS' as relationship,
        'metric:' || latest_metrics.run_uuid || ':' || latest_metrics.metric_key as to_node_id,
        'Experiment' as from_label,
        'Metric' as to_label
    from latest_metrics
    inner join runs
        on latest_metrics.run_uuid = runs.run_uuid
),

unioned as (
    select * from project_has_dataset
    union all
    select * from project_has_evaluation_dataset
    union all
    select * from project_has_model
    union all
    select * from model_trained_on_dataset
    union all
    select * from experiment_run_model
    union all
    select * from experiment_has_metric
),

final as (
    select
        from_node_id || ' -' || relationship || '-> ' || to_node_id as edge_id,
        from_node_id,
        relationship,
        to_node_id,
        from_label,
        to_label
    from unioned
)

select * from final
