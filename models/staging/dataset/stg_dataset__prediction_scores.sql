-- Flat on purpose, like stg_dataset__predictions: a join to it on prediction_id (and class)
-- reaches the table's primary key, and an unused one is left out.
select
    prediction_id,
    class as score_class,
    probability
from {{ source('dataset', 'prediction_scores') }}
