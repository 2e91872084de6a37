-- Every run's confusion matrix is a full K x K grid and its cells add up to the run's
-- prediction count. A row is a run where either fails.
with

cells as (
    select
        run_uuid,
        count(*) as n_cells,
        count(distinct actual_class) as n_actual,
        count(distinct predicted_class) as n_predicted,
        sum(n) as n_total
    from {{ ref('fct_confusion_matrix') }}
    group by run_uuid
),

evaluation as (
    select * from {{ ref('fct_run_evaluation') }}
),

final as (
    select
        cells.run_uuid,
        cells.n_cells,
        cells.n_actual,
        evaluation.n_classes,
        cells.n_total,
        evaluation.n_predictions
    from cells
    inner join evaluation
        on cells.run_uuid = evaluation.run_uuid
    where
        cells.n_cells <> evaluation.n_classes * evaluation.n_classes
        or cells.n_actual <> evaluation.n_classes
        or cells.n_predicted <> evaluation.n_classes
        or cells.n_total <> evaluation.n_predictions
)

select * from final
