"""The seeds hold the real UCI Wine data under the documented names, and bad seeds are refused."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine

from conftest import CONFIG, PROJECT_DIR, clone_database, copy_project, drop_database, run_ml_eval
from ml_eval import datasets
from ml_eval import warehouse as wh
from ml_eval.producer import tracking

SEEDS = PROJECT_DIR / "seeds" / "dataset"
DOCUMENTED_FEATURES = [
    "Alcohol", "Malicacid", "Ash", "Alcalinity_of_ash", "Magnesium", "Total_phenols",
    "Flavanoids", "Nonflavanoid_phenols", "Proanthocyanins", "Color_intensity", "Hue",
    "0D280_0D315_of_diluted_wines", "Proline",
]  # fmt: skip
DOCUMENTED_TYPES = {
    "datasets": {"dataset_id": "integer", "name": "character varying(255)"},
    "samples": {"sample_id": "integer", "dataset_id": "integer", "sample_index": "integer"}
    | dict.fromkeys(DOCUMENTED_FEATURES, "double precision"),
    "targets": {"target_id": "integer", "sample_index": "integer", "target_index": "integer", "class": "integer"},
}


def read_csv(name: str) -> list[dict[str, str]]:
    with (SEEDS / f"{name}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_seed_files_equal_scikit_learns_copy_of_uci_wine():
    wine = load_wine()
    samples, targets = read_csv("samples"), read_csv("targets")
    assert len(samples) == len(targets) == 178
    assert list(samples[0]) == ["sample_id", "dataset_id", "sample_index", *DOCUMENTED_FEATURES]
    features = np.array([[float(row[f]) for f in DOCUMENTED_FEATURES] for row in samples])
    np.testing.assert_array_equal(features, wine.data)
    labels = np.array([int(row["class"]) for row in targets])
    np.testing.assert_array_equal(labels, wine.target + 1)  # UCI numbers the classes 1, 2, 3
    assert sorted(set(labels.tolist())) == [1, 2, 3]
    assert [int(r["sample_index"]) for r in samples] == list(range(178))


def test_build_loads_the_documented_tables_with_documented_types(built: wh.Warehouse):
    with built.connect() as conn:
        for table, columns in DOCUMENTED_TYPES.items():
            rows = conn.execute(
                """
                select column_name, format_type(atttypid, atttypmod)
                from information_schema.columns
                join pg_attribute on attrelid = format('%%I.%%I', table_schema, table_name)::regclass
                    and attname = column_name
                where table_schema = 'wine' and table_name = %s
                order by ordinal_position
                """,
                (table,),
            ).fetchall()
            assert dict(rows) == columns, table
        counts = conn.execute(
            "select (select count(*) from wine.samples), (select count(*) from wine.targets),"
            " (select count(distinct class) from wine.targets)"
        ).fetchone()
    assert counts == (178, 178, 3)


def _corrupt(project: Path, table: str, line: int, old: str, new: str) -> None:
    path = project / "seeds" / "dataset" / f"{table}.csv"
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("".join(lines))


@pytest.fixture(scope="module")
def seeded(warehouse: wh.Warehouse, tmp_path_factory) -> wh.Warehouse:
    """A database where a good build has run: a corrupted seed must take its tables away."""
    database = warehouse.with_database(warehouse.database + "_seeded")
    wh.ensure_database(database, fresh=True)
    try:
        project = copy_project(tmp_path_factory.mktemp("seeded") / "project")
        # `ml-eval build` only reads MLflow's store and the prediction tables: the producer makes them
        tracking.ensure_store(database, CONFIG.mlflow_schema)
        with database.connect() as conn:
            datasets.ensure_tables(conn, CONFIG.dataset_schema)
        run_ml_eval("build", "--no-docs", "--project-dir", str(project), env=database.env())
        yield database
    finally:
        drop_database(database)


@pytest.mark.parametrize(
    ("table", "line", "old", "new", "named"),
    [
        ("samples", 13, "12,1,11,14.12,", "12,1,11,abc,", "column Alcohol line 13 holds 'abc'"),
        ("samples", 13, "12,1,11,", "12,1,10,", "samples.sample_index: unique"),
        ("samples", 13, "12,1,11,", "12,7,11,", "samples.dataset_id: relationships"),
    ],
    ids=["non-numeric-feature", "duplicate-sample-index", "dangling-dataset-id"],
)
def test_corrupted_seed_fails_naming_table_and_column_and_is_quarantined(
    seeded: wh.Warehouse, project_copy: Path, table, line, old, new, named
):
    database = clone_database(seeded, seeded.database + "_bad")
    try:
        with database.connect() as conn:
            assert conn.execute("select count(*) from wine.samples").fetchone() == (178,)
        _corrupt(project_copy, table, line, old, new)
        done = run_ml_eval("build", "--no-docs", "--project-dir", str(project_copy), env=database.env(), check=False)
        assert done.returncode == 2
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("ml-eval: error: dbt build failed:"), done.stderr
        assert named in last
        with database.connect() as conn:
            left = conn.execute(
                "select table_schema || '.' || table_name from information_schema.tables"
                " where table_schema = 'wine' and table_name = 'samples'"
            ).fetchall()
        assert left == [], f"a corrupted seed left {left} for a later run to trust"
    finally:
        drop_database(database)
