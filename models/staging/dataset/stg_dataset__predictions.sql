-- Flat on purpose, without the import CTE of the other staging models: PostgreSQL does not
-- pull a view whose query has a WITH clause up into the query that reads it, so a join to
-- it could use neither the table's primary key nor its run_uuid index, and an unused join
-- to it could not be left out. At millions of predictions that is the difference between
-- an index probe per run and a scan of every row.
select
    prediction_id,
    run_uuid,
    sample_index,
    prediction_index,
    class as predicted_class
from {{ source('dataset', 'predictions') }}
