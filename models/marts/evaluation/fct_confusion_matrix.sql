-- The dense K x K grid of each run, zero cells included. A run's classes are those in its
-- targets or its predictions, as scikit-learn's confusion_matrix(labels=None) takes them.
-- Incremental by run (macros/incremental_helpers.sql): a build adds the runs evaluated since
-- the last one and first removes the runs no longer evaluated (deleted, failed).
{{ config(**run_keyed_incremental(pre_hook=['{{ set_local_work_mem() }}'])) }}

with

predictions as (
    select * from {{ ref('stg_dataset__predictions') }}
    -- only the runs evaluated since the last build, through the run_uuid index
    {{ where_run_is_new(ref('int_runs_evaluated')) }}
),

targets as (
    select * from {{ ref('stg_dataset__targets') }}
),

runs as (
    select * from {{ ref('int_runs_evaluated') }}
),

classes as (
    select * from {{ ref('stg_dataset__classes') }}
),

-- the least work any evaluation does: one count per cell over predictions and targets
cell_counts as (
    select
        predictions.run_uuid,
        targets.actual_class,
        predictions.predicted_class,
        count(*) as n
    from predictions
    inner join runs
        on predictions.run_uuid = runs.run_uuid
    inner join targets
        on predictions.sample_index = targets.sample_index
    group by predictions.run_uuid, targets.actual_class, predictions.predicted_class
),

run_classes as (
    select distinct
        run_uuid,
        actual_class as class_label
    from cell_counts
    union
    select distinct
        run_uuid,
        predicted_class as class_label
    from cell_counts
),

grid as (
    select
        actual.run_uuid,
        actual.class_label as actual_class,
        predicted.class_label as predicted_class
    from run_classes as actual
    inner join run_classes as predicted
        on actual.run_uuid = predicted.run_uuid
),

final as (
    select
        grid.run_uuid,
        grid.actual_class,
        grid.predicted_class,
        coalesce(cell_counts.n, 0) as n,
        actual_names.label_name as actual_class_name,
        predicted_names.label_name as predicted_class_name
    from grid
    inner join runs
        on grid.run_uuid = runs.run_uuid
    left join cell_counts
        on
            grid.run_uuid = cell_counts.run_uuid
            and grid.actual_class = cell_counts.actual_class
            and grid.predicted_class = cell_counts.predicted_class
    left join classes as actual_names
        on
            runs.dataset_id = actual_names.dataset_id
            and grid.actual_class = actual_names.class_label
    left join classes as predicted_names
        on
            runs.dataset_id = predicted_names.dataset_id
            and grid.predicted_class = predicted_names.class_label
)

select * from final
