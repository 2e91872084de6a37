"""ml-eval: the Python side of the dbt project (warehouse launcher, model runs, reports)."""
