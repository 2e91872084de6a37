-- What the class probabilities of each evaluated run say, per scored class: the one-vs-rest
-- ROC AUC (the Mann-Whitney statistic with average ranks for ties, the same number as the
-- area under scikit-learn's ROC curve), the log-loss terms of the predictions whose true
-- class it is, and how many predictions scored in it have probabilities that do not sum to
-- one. One pass per run over its probabilities (and one probe of each prediction's own).
-- A table, incremental by run (macros/incremental_helpers.sql): ranking sorts every score of
-- a run, so a build ranks only the runs evaluated since the last one.
{{ config(**run_keyed_incremental()) }}

with

-- the runs to summarize: every evaluated run in a full build, the new ones otherwise
runs as (
    select evaluated.run_uuid from {{ ref('int_runs_evaluated') }} as evaluated
    where {{ run_is_new('evaluated.run_uuid') }}
),

-- not materialized: each is read inside the per-run lookup below, never in full
predictions as not materialized (
    select * from {{ ref('stg_dataset__predictions') }}
),

targets as not materialized (
    select * from {{ ref('stg_dataset__targets') }}
),

scores as not materialized (
    select * from {{ ref('stg_dataset__prediction_scores') }}
),

-- One run at a time (a lateral join): its predictions through the run_uuid index, their
-- scores through the scores' primary key, sorted in memory. No sort of every score of
-- every run, and only the new runs' rows in an incremental build.
-- Twice the average rank of a score is an integer, from one window: the rank of the first
-- and of the last of its ties (count(*) with the default range frame counts the ties too).
-- It is halved once per class: exact, and no numeric arithmetic per row.
-- Nothing is materialized inside: at 10,000 runs a CTE written out per run, or a hash
-- table built per run, cost more than the ranking itself (measured).
per_class as (
    select
        runs.run_uuid,
        run_classes.score_class,
        run_classes.n_positive,
        run_classes.n_negative,
        run_classes.positive_rank_sum,
        run_classes.positive_log_loss_sum,
        run_classes.n_probability_sums_off
    from runs
    -- a correlated subquery cannot be a CTE of the model: the rule does not apply
    cross join lateral (  -- noqa: ST05
        with

        ranked as (
            select
                scores.score_class,
                scores.probability,
                targets.actual_class = scores.score_class as is_positive,
                prediction_totals.is_sum_off,
                rank() over by_probability + count(*) over by_probability as double_average_rank
            from predictions
            inner join targets
                on predictions.sample_index = targets.sample_index
            -- whether the prediction's probabilities sum to one: a probe of its few scores
            cross join
                lateral (  -- noqa: ST05
                    select
                        abs(sum(all_scores.probability) - 1)
                        > {{ var('probability_tolerance') }} as is_sum_off
                    from scores as all_scores
                    where all_scores.prediction_id = predictions.prediction_id
                ) as prediction_totals
            inner join scores
                on predictions.prediction_id = scores.prediction_id
            where predictions.run_uuid = runs.run_uuid
            window by_probability as (partition by scores.score_class order by scores.probability)
        )

        select
            score_class,
            count(*) filter (where is_positive) as n_positive,
            count(*) filter (where not is_positive) as n_negative,
            sum(double_average_rank) filter (where is_positive) / 2.0 as positive_rank_sum,
            -- log loss clips each probability to [eps, 1 - eps], eps = 2.220446049250313e-16
            -- (numpy's float64 machine epsilon), exactly as scikit-learn does
            coalesce(sum(
                -ln(greatest(least(probability, 1 - 2.220446049250313e-16), 2.220446049250313e-16))
            ) filter (where is_positive), 0) as positive_log_loss_sum,
            count(*) filter (where is_sum_off) as n_probability_sums_off
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
        end as roc_auc,
        positive_log_loss_sum,
        n_probability_sums_off
    from per_class
)

select * from final
