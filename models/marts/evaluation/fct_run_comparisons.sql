-- Each evaluated run against its reference (int_run_references: its group's champion, else
-- its experiment's top run on its dataset), on the samples both predicted: how many each got
-- right that the other got wrong, and the exact McNemar test of those two counts, equal to
-- SciPy's binomtest(b, b + c, 0.5).pvalue. The reference is compared with itself (0 and 0,
-- p-value 1), so every evaluated run has a row.
-- Incremental by run (macros/incremental_helpers.sql), keyed on the comparison's fingerprint:
-- a build compares the new runs and the runs whose inputs or reference changed (the champion
-- moved, a better run became the experiment's top), each through the run_uuid index.
{{ config(**run_keyed_incremental(runs_model='int_run_references')) }}

with

run_references as (
    select * from {{ ref('int_run_references') }}
),

-- not materialized: each is read inside the per-run lookup below, never in full
predictions as not materialized (
    select * from {{ ref('stg_dataset__predictions') }}
),

targets as not materialized (
    select * from {{ ref('stg_dataset__targets') }}
),

uncompared as (
    select
        run_references.run_uuid,
        run_references.reference_run_uuid,
        run_references.reference_kind
    from run_references
    where {{ run_is_new('run_references.run_uuid', runs_model='int_run_references') }}
),

-- One run at a time (a lateral join): its predictions and its reference's, each through the
-- run_uuid index, paired on the sample and scored against its target.
paired as (
    select
        uncompared.run_uuid,
        uncompared.reference_run_uuid,
        uncompared.reference_kind,
        outcomes.n_paired,
        outcomes.n_run_only_correct,
        outcomes.n_reference_only_correct
    from uncompared
    -- a correlated count per run cannot be a CTE of the model: the rule does not apply
    cross join
        lateral (  -- noqa: ST05
            select
                count(*) as n_paired,
                count(*) filter (
                    where
                    run_predictions.predicted_class = targets.actual_class
                    and reference_predictions.predicted_class <> targets.actual_class
                ) as n_run_only_correct,
                count(*) filter (
                    where
                    run_predictions.predicted_class <> targets.actual_class
                    and reference_predictions.predicted_class = targets.actual_class
                ) as n_reference_only_correct
            from predictions as run_predictions
            inner join predictions as reference_predictions
                on run_predictions.sample_index = reference_predictions.sample_index
            inner join targets
                on run_predictions.sample_index = targets.sample_index
            where
                run_predictions.run_uuid = uncompared.run_uuid
                and reference_predictions.run_uuid = uncompared.reference_run_uuid
        ) as outcomes
),

-- The exact two-sided test with b and c discordant pairs, b <> c: with n = b + c and
-- k = min(b, c) < n / 2, p = 2 * sum_{i=0..k} C(n, i) / 2^n (SciPy's binomtest for p = 0.5;
-- b = c gives 1). In logarithms, as PostgreSQL has no lgamma: ln C(n, i) is a running sum of
-- ln((n - i + 1) / i), each a float8 logarithm summed in numeric (so a sum of thousands keeps
-- every term's precision); the terms are scaled by the largest, C(n, k), so none underflows
-- but those below e^-745 of it, which cannot change a float8 sum. Equal to SciPy to 1e-11
-- relative up to n = 5,000 (tests_python/test_comparisons.py).
tails as (
    select
        paired.run_uuid,
        tail.log_p_value
    from paired
    -- a correlated sum per run cannot be a CTE of the model: the rule does not apply
    cross join
        lateral (  -- noqa: ST05
            with

            terms as (
                select
                    sum(
                        case
                            when i = 0 then 0
                            else
                                cast(ln(
                                    cast(
                                        paired.n_run_only_correct + paired.n_reference_only_correct - i + 1
                                        as {{ dbt.type_float() }}
                                    )
                                    / i
                                ) as numeric)
                        end
                    ) over (order by i) as log_binomial
                from generate_series(0, least(paired.n_run_only_correct, paired.n_reference_only_correct)) as i
            ),

            scaled as (
                select
                    cast(log_binomial as {{ dbt.type_float() }}) as log_binomial,
                    cast(max(log_binomial) over () as {{ dbt.type_float() }}) as log_largest
                from terms
            )

            select
                max(scaled.log_largest)
                + ln(sum(
                    case
                        when scaled.log_binomial - scaled.log_largest < -745 then 0
                        else exp(scaled.log_binomial - scaled.log_largest)
                    end
                ))
                + (1 - paired.n_run_only_correct - paired.n_reference_only_correct)
                * ln(cast(2 as {{ dbt.type_float() }})) as log_p_value
            from scaled
        ) as tail
    where paired.n_run_only_correct <> paired.n_reference_only_correct
),

tested as (
    select
        paired.run_uuid,
        paired.reference_run_uuid,
        paired.reference_kind,
        paired.n_paired,
        paired.n_run_only_correct,
        paired.n_reference_only_correct,
        case
            when tails.log_p_value is null then cast(1 as {{ dbt.type_float() }})
            -- below float8's least positive value
            when tails.log_p_value < -745 then cast(0 as {{ dbt.type_float() }})
            else least(cast(1 as {{ dbt.type_float() }}), exp(tails.log_p_value))
        end as mcnemar_p_value
    from paired
    left join tails
        on paired.run_uuid = tails.run_uuid
),

final as (
    select
        *,
        n_run_only_correct > n_reference_only_correct
        and mcnemar_p_value < {{ var('comparison_alpha') }} as is_better_beyond_chance
    from tested
)

select * from final
