-- Every mart of one build sees the same runs: those of int_runs_classified (a table made once
-- per build), and of them the evaluated ones (int_runs_evaluated). A run MLflow records
-- mid-build must wait for the next build in all of them, not appear in some. A row is a run
-- one mart holds and the run set it should agree with lacks, or the other way round.
with

classified as (
    select run_uuid from {{ ref('int_runs_classified') }}
),

evaluated as (
    select run_uuid from {{ ref('int_runs_evaluated') }}
),

dim_runs as (
    select
        run_uuid,
        is_evaluated
    from {{ ref('dim_runs') }}
),

run_evaluation as (
    select run_uuid from {{ ref('fct_run_evaluation') }}
),

leaderboard as (
    select run_uuid from {{ ref('rpt_model_leaderboard') }}
),

-- every evaluated run is compared with its reference (itself, for the reference)
run_comparisons as (
    select run_uuid from {{ ref('fct_run_comparisons') }}
),

-- the graph's Experiment nodes are MLflow runs
lineage_runs as (
    select properties ->> 'run_uuid' as run_uuid
    from {{ ref('lineage_nodes') }}
    where node_id like 'experiment:%'
),

-- the runs the graph's edges start from: Experiment RUN Model, Experiment HAS Metric
lineage_edge_runs as (
    select distinct substring(from_node_id from length('experiment:') + 1) as run_uuid
    from {{ ref('lineage_edges') }}
    where from_node_id like 'experiment:%'
),

comparisons as (
    select
        'dim_runs' as mart,
        'int_runs_classified' as run_set,
        run_uuid
    from dim_runs
    union all
    select
        'dim_runs where is_evaluated' as mart,
        'int_runs_evaluated' as run_set,
        run_uuid
    from dim_runs
    where is_evaluated
    union all
    select
        'fct_run_evaluation' as mart,
        'int_runs_evaluated' as run_set,
        run_uuid
    from run_evaluation
    union all
    select
        'rpt_model_leaderboard' as mart,
        'int_runs_evaluated' as run_set,
        run_uuid
    from leaderboard
    union all
    select
        'fct_run_comparisons' as mart,
        'int_runs_evaluated' as run_set,
        run_uuid
    from run_comparisons
    union all
    select
        'lineage_nodes (Experiment)' as mart,
        'int_runs_classified' as run_set,
        run_uuid
    from lineage_runs
),

run_sets as (
    select
        'int_runs_classified' as run_set,
        run_uuid
    from classified
    union all
    select
        'int_runs_evaluated' as run_set,
        run_uuid
    from evaluated
),

-- every comparison, listed on its own so that an empty mart is compared too
marts as (
    select
        'dim_runs' as mart,
        'int_runs_classified' as run_set
    union all
    select
        'dim_runs where is_evaluated' as mart,
        'int_runs_evaluated' as run_set
    union all
    select
        'fct_run_evaluation' as mart,
        'int_runs_evaluated' as run_set
    union all
    select
        'rpt_model_leaderboard' as mart,
        'int_runs_evaluated' as run_set
    union all
    select
        'fct_run_comparisons' as mart,
        'int_runs_evaluated' as run_set
    union all
    select
        'lineage_nodes (Experiment)' as mart,
        'int_runs_classified' as run_set
),

-- runs a mart holds that its run set lacks
extra as (
    select
        comparisons.mart,
        comparisons.run_uuid,
        'not in ' || comparisons.run_set as problem
    from comparisons
    where not exists (
        select 1 from run_sets
        where run_sets.run_set = comparisons.run_set and run_sets.run_uuid = comparisons.run_uuid
    )
),

-- runs of the run set a mart lacks
missing as (
    select
        marts.mart,
        run_sets.run_uuid,
        'in ' || run_sets.run_set || ', missing' as problem
    from marts
    inner join run_sets
        on marts.run_set = run_sets.run_set
    where not exists (
        select 1 from comparisons
        where comparisons.mart = marts.mart and comparisons.run_uuid = run_sets.run_uuid
    )
),

-- an edge from an Experiment that is not a node of the graph
dangling_edges as (
    select
        'lineage_edges' as mart,
        lineage_edge_runs.run_uuid,
        'not an Experiment node' as problem
    from lineage_edge_runs
    where not exists (
        select 1 from lineage_runs
        where lineage_runs.run_uuid = lineage_edge_runs.run_uuid
    )
),

final as (
    select * from extra
    union all
    select * from missing
    union all
    select * from dangling_edges
)

select * from final
