"""The UCI Wine data under the documented names of the Dataset Database.

scikit-learn ships the same 178 samples (`load_wine`, read from its own package files,
no download) with other column names and class labels 0, 1, 2; UCI's labels are 1, 2, 3.
`ml-eval seeds` writes the seed CSVs from it; a test checks the committed files against it.
"""

from __future__ import annotations

import csv
from pathlib import Path

# scikit-learn's feature name -> the documented column of `samples`, in documented order.
FEATURES: dict[str, str] = {
    "alcohol": "Alcohol",
    "malic_acid": "Malicacid",
    "ash": "Ash",
    "alcalinity_of_ash": "Alcalinity_of_ash",
    "magnesium": "Magnesium",
    "total_phenols": "Total_phenols",
    "flavanoids": "Flavanoids",
    "nonflavanoid_phenols": "Nonflavanoid_phenols",
    "proanthocyanins": "Proanthocyanins",
    "color_intensity": "Color_intensity",
    "hue": "Hue",
    "od280/od315_of_diluted_wines": "0D280_0D315_of_diluted_wines",
    "proline": "Proline",
}
DATASET_ID = 1
DATASET_NAME = "UCI Wine"
UCI_LABEL_OFFSET = 1  # scikit-learn's class 0 is UCI's class 1


def seed_rows() -> dict[str, list[dict[str, object]]]:
    """The rows of the three seed tables, built from scikit-learn's copy of the data."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    columns = [FEATURES[name] for name in wine.feature_names]
    samples, targets = [], []
    for index, (features, label) in enumerate(zip(wine.data, wine.target, strict=True)):
        row: dict[str, object] = {
            "sample_id": index + 1,
            "dataset_id": DATASET_ID,
            "sample_index": index,
        }
        row.update({column: float(value) for column, value in zip(columns, features, strict=True)})
        samples.append(row)
        targets.append(
            {
                "target_id": index + 1,
                "sample_index": index,
                "target_index": index,
                "class": int(label) + UCI_LABEL_OFFSET,
            }
        )
    return {
        "datasets": [{"dataset_id": DATASET_ID, "name": DATASET_NAME}],
        "samples": samples,
        "targets": targets,
    }


def write_seeds(directory: Path) -> list[Path]:
    """Write datasets.csv, samples.csv and targets.csv into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table, rows in seed_rows().items():
        path = directory / f"{table}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written.append(path)
    return written
