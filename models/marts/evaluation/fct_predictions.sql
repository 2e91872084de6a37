-- One row per prediction of an evaluated run, with its true class and the probabilities
-- that log loss needs. One pass over the scores: each prediction's rows are folded once.
-- Incremental by run (macros/incremental_helpers.sql): a build inserts the runs evaluated
-- since the last one and first deletes the runs no longer evaluated (deleted, failed).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['run_uuid']}],
        post_hook=[{'sql': '{{ vacuum_after_full_build() }}', 'transaction': false}],
        pre_hook="{{ delete_stale_runs(
            'select run_uuid from ' ~ relation_of('int_runs_classified') ~ ' where is_evaluated',
            many_rows_per_run=true,
        ) }}",
    )
}}

{%- set evaluated_runs_not_built -%}
    select runs.run_uuid from {{ ref('int_runs_classified') }} as runs
    where runs.is_evaluated and {{ run_is_new('runs.run_uuid') }}
{%- endset %}

with

predictions as (
    select * from {{ ref('stg_dataset__predictions') }}
    {%- if is_incremental() %}
        -- only the runs evaluated since the last build
        where {{ run_uuid_in(evaluated_runs_not_built) }}
    {%- endif %}
),

targets as (
    select * from {{ ref('stg_dataset__targets') }}
),

scores as (
    select * from {{ ref('stg_dataset__prediction_scores') }}
),

runs as (
    select * from {{ ref('int_runs_classified') }}
    where is_evaluated
),

scored as (
    select
        predictions.prediction_id,
        predictions.run_uuid,
        predictions.sample_index,
        predictions.prediction_index,
        predictions.predicted_class,
        targets.actual_class
    from predictions
    inner join runs
        on predictions.run_uuid = runs.run_uuid
    inner join targets
        on predictions.sample_index = targets.sample_index
),

-- a lateral fold per prediction reads its few score rows through the scores' primary key:
-- no sort or hash of all scores, and only the new runs' rows in an incremental build
final as (
    select
        scored.prediction_id,
        scored.run_uuid,
        scored.sample_index,
        scored.prediction_index,
        scored.predicted_class,
        scored.actual_class,
        scored.predicted_class = scored.actual_class as is_correct,
        probabilities.predicted_class_probability,
        probabilities.actual_class_probability,
        probabilities.probability_sum,
        probabilities.n_scored_classes
    from scored
    left join lateral (
        select
            max(scores.probability) filter (
                where scores.score_class = scored.predicted_class
            ) as predicted_class_probability,
            max(scores.probability) filter (
                where scores.score_class = scored.actual_class
            ) as actual_class_probability,
            sum(scores.probability) as probability_sum,
            count(scores.score_class) as n_scored_classes
        from scores
        where scores.prediction_id = scored.prediction_id
    ) as probabilities on true
)

select * from final
