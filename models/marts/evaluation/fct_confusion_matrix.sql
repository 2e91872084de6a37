-- The dense K x K grid of each run, zero cells included. A run's classes are those in its
-- targets or its predictions, as scikit-learn's confusion_matrix(labels=None) takes them.
-- Incremental by run, like fct_predictions: the runs it gained are added, the runs it lost removed.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['run_uuid']}],
        post_hook=[{'sql': '{{ vacuum_after_full_build() }}', 'transaction': false}],
        pre_hook="{{ delete_stale_runs(distinct_run_uuids(relation_of('fct_predictions'), many_rows_per_run=true)) }}",
    )
}}

-- the parent, referred to once: the filter of new runs reads the same relation
{%- set fct_predictions -%}{{ ref('fct_predictions') }}{%- endset %}

with

predictions as (
    select * from {{ fct_predictions }}
    {{ where_run_is_new(fct_predictions, many_rows_per_run=true) }}
),

cell_counts as (
    select
        run_uuid,
        actual_class,
        predicted_class,
        count(*) as n
    from predictions
    group by run_uuid, actual_class, predicted_class
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
        coalesce(cell_counts.n, 0) as n
    from grid
    left join cell_counts
        on
            grid.run_uuid = cell_counts.run_uuid
            and grid.actual_class = cell_counts.actual_class
            and grid.predicted_class = cell_counts.predicted_class
)

select * from final
