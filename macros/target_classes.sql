{#- The CTEs `dataset_classes` (each dataset's target classes) and `universal_classes`
    (classes every dataset has), for the tests that a predicted or scored class is a class
    of its dataset's targets. Needs `samples` and `targets` CTEs before it. -#}
{% macro dataset_class_ctes() %}
dataset_classes as (
    select distinct
        samples.dataset_id,
        targets.actual_class
    from targets
    inner join samples
        on targets.sample_index = samples.sample_index
),

dataset_count as (
    select count(distinct dataset_id) as n_datasets
    from dataset_classes
),

-- classes of every dataset: a row holding one needs no look-up of its sample, so only
-- the few others are joined (predictions and scores grow with every run)
universal_classes as (
    select dataset_classes.actual_class
    from dataset_classes
    cross join dataset_count
    group by dataset_classes.actual_class, dataset_count.n_datasets
    having count(*) = dataset_count.n_datasets
),
{% endmacro %}
