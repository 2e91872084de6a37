-- The evaluated runs, the one definition every evaluation model and hook reads: which runs
-- the run-keyed marts hold, which they add and which they delete (run_keyed_incremental),
-- and which runs the published predictions hold (publish_runs). A view over the classified
-- runs' table, so it plans with that table's statistics.
with

classified as (
    select * from {{ ref('int_runs_classified') }}
),

final as (
    select
        run_uuid,
        experiment_id,
        dataset_id,
        input_fingerprint
    from classified
    where is_evaluated
)

select * from final
