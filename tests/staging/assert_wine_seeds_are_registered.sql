-- Warns when the demo's Wine seeds differ from what the Dataset Database holds as their
-- dataset (registered by `ml-eval train`): a seed file corrected afterwards reloads into
-- schema var('seed_schema') while the marts still score the registered labels and features.
-- `ml-eval build`, run as the role that owns the Dataset Database, registers a changed seed
-- file before it builds (datasets.refresh_wine), so this warns only under a plain `dbt build`
-- or another role, or after a hand edit of Wine's rows in the Dataset Database (which the
-- marts follow, and which a changed seed file would replace). A warning, not an error: both
-- sides are valid data, and the marts are right about the registered one. A row is a sample
-- whose label or features differ, or that only one side holds. Passes while no dataset of
-- the seeds' name is registered (a team's own warehouse).
{{ config(severity='warn') }}
{#- the seeds' documented feature columns and their staging names (stg_dataset__samples) -#}
{%- set wine_features = [
    {"seed": "Alcohol", "name": "alcohol"},
    {"seed": "Malicacid", "name": "malic_acid"},
    {"seed": "Ash", "name": "ash"},
    {"seed": "Alcalinity_of_ash", "name": "alcalinity_of_ash"},
    {"seed": "Magnesium", "name": "magnesium"},
    {"seed": "Total_phenols", "name": "total_phenols"},
    {"seed": "Flavanoids", "name": "flavanoids"},
    {"seed": "Nonflavanoid_phenols", "name": "nonflavanoid_phenols"},
    {"seed": "Proanthocyanins", "name": "proanthocyanins"},
    {"seed": "Color_intensity", "name": "color_intensity"},
    {"seed": "Hue", "name": "hue"},
    {"seed": "0D280_0D315_of_diluted_wines", "name": "od280_od315_of_diluted_wines"},
    {"seed": "Proline", "name": "proline"}
] -%}

with

seed_datasets as (
    select * from {{ ref('datasets') }}
),

seed_samples as (
    select * from {{ ref('samples') }}
),

seed_targets as (
    select * from {{ ref('targets') }}
),

registered_datasets as (
    select * from {{ ref('stg_dataset__datasets') }}
),

registered_samples as (
    select * from {{ ref('stg_dataset__samples') }}
),

registered_targets as (
    select * from {{ ref('stg_dataset__targets') }}
),

wine as (
    select registered_datasets.dataset_id
    from registered_datasets
    inner join seed_datasets
        on registered_datasets.dataset_name = seed_datasets.name
),

seeded as (
    select
        cast(seed_samples.sample_index as text) as sample_key,
        {%- for column in wine_features %}
            seed_samples."{{ column.seed }}" as {{ column.name }},
        {%- endfor %}
        seed_targets.class as actual_class
    from seed_samples
    inner join seed_targets
        on seed_samples.sample_index = seed_targets.sample_index
    where exists (select 1 from wine)
),

registered as (
    select
        registered_samples.sample_key,
        {%- for column in wine_features %}
            registered_samples.{{ column.name }},
        {%- endfor %}
        registered_targets.actual_class
    from registered_samples
    inner join wine
        on registered_samples.dataset_id = wine.dataset_id
    inner join registered_targets
        on registered_samples.sample_index = registered_targets.sample_index
),

final as (
    select
        coalesce(seeded.sample_key, registered.sample_key) as sample_key,
        seeded.actual_class as seed_class,
        registered.actual_class as registered_class
    from seeded
    full outer join registered
        on seeded.sample_key = registered.sample_key
    where
        seeded.sample_key is null
        or registered.sample_key is null
        or seeded.actual_class is distinct from registered.actual_class
        {%- for column in wine_features %}
            or seeded.{{ column.name }} is distinct from registered.{{ column.name }}
        {%- endfor %}
)

select * from final
