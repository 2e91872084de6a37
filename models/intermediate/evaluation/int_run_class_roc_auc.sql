-- One-vs-rest ROC AUC of each run and scored class, as the Mann-Whitney statistic with
-- average ranks for tied scores: the same number as the area under scikit-learn's ROC
-- curve. Null where a class has no positive or no negative example.
-- A table, incremental by run: ranking sorts every score of a run, so each build ranks
-- only the runs fct_predictions gained (and drops the runs it lost).
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

-- the runs to rank: every run of fct_predictions in a full build, its new runs otherwise
runs as (
    select held_runs.run_uuid
    from ({{ distinct_run_uuids(ref('fct_predictions'), many_rows_per_run=true) }}) as held_runs
    where {{ run_is_new('held_runs.run_uuid') }}
),

predictions as (
    select * from {{ ref('fct_predictions') }}
),

scores as (
    select * from {{ ref('stg_dataset__prediction_scores') }}
),

-- One run at a time (a lateral join): its predictions through the run_uuid index, their
-- scores through the scores' primary key, ranked in memory. No sort of every score of
-- every run, and only the new runs' rows in an incremental build. (The staging view of
-- the scores is not flattened into a join, so its key is reached with a lateral lookup;
-- offset 0 keeps the planner from turning that back into a join over all scores.)
-- Twice the average rank of each score is an integer, from one window: the rank of the
-- first and of the last of its ties (count(*) with the default range frame counts the
-- ties too). It is halved once per class: exact, and no numeric arithmetic per row.
per_class as (
    select
        runs.run_uuid,
        run_classes.score_class,
        run_classes.n_positive,
        run_classes.n_negative,
        run_classes.positive_rank_sum
    from runs
    -- a correlated subquery cannot be a CTE of the model: the rule does not apply
    cross join lateral (  -- noqa: ST05
        with

        ranked as (
            select
                run_scores.score_class,
                predictions.actual_class = run_scores.score_class as is_positive,
                rank() over by_probability + count(*) over by_probability as double_average_rank
            from predictions
            cross join
                lateral (
                    select
                        scores.score_class,
                        scores.probability
                    from scores
                    where scores.prediction_id = predictions.prediction_id
                    order by scores.score_class
                    offset 0
                ) as run_scores
            where predictions.run_uuid = runs.run_uuid
            window by_probability as (
                partition by run_scores.score_class order by run_scores.probability
            )
        )

        select
            score_class,
            count(*) filter (where is_positive) as n_positive,
            count(*) filter (where not is_positive) as n_negative,
            sum(double_average_rank) filter (where is_positive) / 2.0 as positive_rank_sum
        from ranked
        group by score_class
    ) as run_classes
),

final as (
    select
        run_uuid,
        score_class,
        n_positive,
        n_negative,
        case
            when n_positive > 0 and n_negative > 0
                then
                    (
                        cast(positive_rank_sum as {{ dbt.type_float() }})
                        - n_positive * (n_positive + 1) / 2.0
                    )
                    / (cast(n_positive as {{ dbt.type_float() }}) * n_negative)
        end as roc_auc
    from per_class
)

select * from final
