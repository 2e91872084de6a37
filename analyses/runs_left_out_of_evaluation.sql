-- Audit: the MLflow runs the evaluation marts leave out, and why, per experiment.
-- `dbt compile --select runs_left_out_of_evaluation` writes the SQL to run by hand.
select
    experiment_name,
    exclusion_reason,
    count(*) as n_runs,
    min(started_at) as first_started_at,
    max(started_at) as last_started_at
from {{ ref('dim_runs') }}
where not is_evaluated
group by experiment_name, exclusion_reason
order by experiment_name asc, n_runs desc
