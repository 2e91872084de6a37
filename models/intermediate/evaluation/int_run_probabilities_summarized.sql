-- Per evaluated run, what its class probabilities say: log loss and whether every
-- prediction's probabilities sum to one. Kept apart from fct_run_evaluation because it
-- reads every prediction: a table, incremental by run, like fct_predictions.
-- log loss clips each probability to [eps, 1 - eps], eps = 2.220446049250313e-16
-- (numpy's float64 machine epsilon), exactly as scikit-learn does.
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

with

predictions as (
    select * from {{ ref('fct_predictions') }}
    {{ where_run_is_new(ref('fct_predictions'), many_rows_per_run=true) }}
),

final as (
    select
        run_uuid,
        avg(
            -ln(greatest(
                least(coalesce(actual_class_probability, 0), 1 - 2.220446049250313e-16),
                2.220446049250313e-16
            ))
        ) as log_loss,
        bool_and(abs(probability_sum - 1) <= 1e-6) as probabilities_sum_to_one
    from predictions
    group by run_uuid
)

select * from final
