with

source as (
    select * from {{ source('dataset', 'samples') }}
),

renamed as (
    select
        sample_id,
        dataset_id,
        sample_index,
        "Alcohol" as alcohol,
        "Malicacid" as malic_acid,
        "Ash" as ash,
        "Alcalinity_of_ash" as alcalinity_of_ash,
        "Magnesium" as magnesium,
        "Total_phenols" as total_phenols,
        "Flavanoids" as flavanoids,
        "Nonflavanoid_phenols" as nonflavanoid_phenols,
        "Proanthocyanins" as proanthocyanins,
        "Color_intensity" as color_intensity,
        "Hue" as hue,
        "0D280_0D315_of_diluted_wines" as od280_od315_of_diluted_wines,
        "Proline" as proline,
        sample_key,
        features
    from source
)

select * from renamed
