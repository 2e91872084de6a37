"""The project keeps dbt-project-evaluator's rules (`ml_eval.rules`), and breaking one is reported.

The manifests come from `dbt parse` (no database needed, only the PG* variables the profile
reads), into temporary target paths so the project's own target/ is never touched.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_DIR
from ml_eval import rules
from ml_eval import warehouse as wh


def dbt_parse(project: Path, target: Path, warehouse: wh.Warehouse) -> dict:
    """`dbt parse` of a project (in-process, dbt's Python API) into `target`; the manifest."""
    from dbt.cli.main import dbtRunner

    with pytest.MonkeyPatch.context() as env:
        for key, value in {**warehouse.env(), "DO_NOT_TRACK": "1"}.items():
            env.setenv(key, value)
        outcome = dbtRunner().invoke(
            [
                "parse",
                "--quiet",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
                "--target-path",
                str(target),
                "--log-path",
                str(target / "logs"),
            ]
        )
    assert outcome.success, f"dbt parse of {project} failed: {outcome.exception}"
    return json.loads((target / "manifest.json").read_text())


@pytest.fixture(scope="module")
def manifest_path(warehouse: wh.Warehouse, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("rules_target")
    dbt_parse(PROJECT_DIR, target, warehouse)
    return target / "manifest.json"


@pytest.fixture(scope="module")
def manifest(manifest_path: Path) -> dict:
    return json.loads(manifest_path.read_text())


def test_the_project_keeps_every_rule(manifest_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "ml_eval", "rules", "--no-parse", "--manifest", str(manifest_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"rule violations:\n{done.stdout}{done.stderr}"
    assert done.stdout.strip().endswith("checked: no violations")
    assert done.stdout.count("\n") == 1


# --- breaking a rule on purpose, in a copy of the project ---------------------------------


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is no longer in {path}: update this test"
    path.write_text(text.replace(old, new))


def edit_yaml(path: Path, edit: Callable[[dict], None]) -> None:
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def named(items: list[dict], name: str) -> dict:
    return next(item for item in items if item["name"] == name)


def mart_reads_source(p: Path) -> None:
    replace(
        p / "models/marts/evaluation/fct_confusion_matrix.sql",
        "{{ ref('stg_dataset__predictions') }}",
        "{{ source('dataset', 'predictions') }}",
    )


def intermediate_reads_source_and_model(p: Path) -> None:
    replace(
        p / "models/intermediate/evaluation/int_run_class_scores_summarized.sql",
        "{{ ref('stg_dataset__prediction_scores') }}",
        "{{ source('dataset', 'prediction_scores') }}",
    )


def staging_reads_model(p: Path) -> None:
    replace(
        p / "models/staging/mlflow/stg_mlflow__params.sql",
        "{{ source('mlflow', 'params') }}",
        "{{ ref('stg_mlflow__runs') }}",
    )


def staging_model_without_prefix(p: Path) -> None:
    folder = p / "models/staging/mlflow"
    (folder / "stg_mlflow__trace_tags.sql").rename(folder / "mlflow__trace_tags.sql")
    replace(folder / "_mlflow__models.yml", "name: stg_mlflow__trace_tags", "name: mlflow__trace_tags")


def model_outside_the_layers(p: Path) -> None:
    (p / "models/evaluation").mkdir()
    (p / "models/marts/evaluation/fct_class_metrics.sql").rename(p / "models/evaluation/fct_class_metrics.sql")


def column_without_description(p: Path) -> None:
    edit_yaml(
        p / "models/intermediate/evaluation/_evaluation__models.yml",
        lambda doc: named(doc["models"], "int_runs_classified")["columns"].append({"name": "is_recent"}),
    )


def descriptions_removed(p: Path) -> None:
    edit_yaml(
        p / "models/marts/evaluation/_evaluation__models.yml",
        lambda doc: named(doc["models"], "rpt_model_leaderboard").pop("description"),
    )

    def sources(doc: dict) -> None:
        mlflow = named(doc["sources"], "mlflow")
        named(mlflow["tables"], "experiment_tags")["description"] = " "
        named(named(mlflow["tables"], "params")["columns"], "value").pop("description")

    edit_yaml(p / "models/staging/mlflow/_mlflow__sources.yml", sources)

    def seeds(doc: dict) -> None:
        named(doc["seeds"], "datasets").pop("description")
        named(named(doc["seeds"], "targets")["columns"], "class").pop("description")

    edit_yaml(p / "seeds/dataset/_dataset__seeds.yml", seeds)

    def macros(doc: dict) -> None:
        named(doc["macros"], "safe_ratio").pop("description")
        named(doc["macros"], "test_accepted_range").pop("description")

    edit_yaml(p / "macros/_macros.yml", macros)


def primary_key_tests_removed(p: Path) -> None:
    def edit(doc: dict) -> None:
        named(named(doc["models"], "stg_dataset__datasets")["columns"], "dataset_id").pop("data_tests")
        named(named(doc["models"], "stg_dataset__datasets")["columns"], "dataset_name").pop("data_tests")
        named(doc["models"], "stg_dataset__prediction_scores").pop("data_tests")
        # unique alone is not a primary key: the key may still be null
        named(named(doc["models"], "stg_dataset__predictions")["columns"], "prediction_id")["data_tests"] = ["unique"]

    edit_yaml(p / "models/staging/dataset/_dataset__models.yml", edit)


NO_KEY = ": add unique + not_null on its key, unique_combination_of_columns, or an enforced primary_key constraint"
BREAKAGES = {
    "mart reads a source": (
        mart_reads_source,
        [
            "model fct_confusion_matrix reads source dataset.predictions: only staging models may read sources",
            "model fct_confusion_matrix reads source dataset.predictions and model int_runs_evaluated: "
            "no model may read both a source and a model",
        ],
    ),
    "model reads a source and a model": (
        intermediate_reads_source_and_model,
        [
            "model int_run_class_scores_summarized reads source dataset.prediction_scores:"
            " only staging models may read sources",
            "model int_run_class_scores_summarized reads source dataset.prediction_scores"
            " and model int_runs_evaluated: no model may read both a source and a model",
        ],
    ),
    "staging reads a model": (
        staging_reads_model,
        [
            "model stg_mlflow__params reads model stg_mlflow__runs: staging models read only sources and seeds",
        ],
    ),
    "staging model without stg_": (
        staging_model_without_prefix,
        [
            "model mlflow__trace_tags is in models/staging/mlflow/: staging model names start with stg_",
        ],
    ),
    "model outside the layer folders": (
        model_outside_the_layers,
        [
            "model fct_class_metrics is in models/evaluation/: models live in staging/, intermediate/, marts/",
        ],
    ),
    "undocumented column in YAML": (
        column_without_description,
        [
            "model int_runs_classified column is_recent has no description",
        ],
    ),
    "descriptions removed": (
        descriptions_removed,
        [
            "model rpt_model_leaderboard has no description",
            "source mlflow.experiment_tags has no description",
            "source mlflow.params column value has no description",
            "seed datasets has no description",
            "seed targets column class has no description",
            "macro safe_ratio has no description",
            "macro test_accepted_range has no description",
        ],
    ),
    "primary-key tests removed": (
        primary_key_tests_removed,
        [
            "model stg_dataset__datasets has no primary-key test" + NO_KEY,
            "model stg_dataset__predictions has no primary-key test" + NO_KEY,
            "model stg_dataset__prediction_scores has no primary-key test" + NO_KEY,
        ],
    ),
}


def without_macro_files(messages: set[str]) -> list[str]:
    """`macro x (macros/y.sql) has ...` as `macro x has ...`: macros move between files."""
    return [re.sub(r"^(macro \S+) \(\S+\)", r"\1", message) for message in messages]


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_breaking_a_rule_is_reported(breakage: str, project_copy: Path, warehouse: wh.Warehouse, manifest: dict):
    """Exactly the expected messages appear, beyond those the unbroken project already has."""
    edit, expected = BREAKAGES[breakage]
    edit(project_copy)
    broken = dbt_parse(project_copy, project_copy / "target", warehouse)
    new = set(rules.check(broken)) - set(rules.check(manifest))
    assert sorted(without_macro_files(new)) == sorted(expected)


def test_the_command_exits_1_with_the_violations(project_copy: Path, warehouse: wh.Warehouse):
    mart_reads_source(project_copy)
    dbt_parse(project_copy, project_copy / "target", warehouse)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_eval",
            "rules",
            "--no-parse",
            "--manifest",
            str(project_copy / "target" / "manifest.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "model fct_confusion_matrix reads source dataset.predictions" in done.stdout
    assert "violations" in done.stderr


# --- the same checks on edited manifests (no dbt needed) -----------------------------------


def mart(manifest: dict, name: str) -> dict:
    return manifest["nodes"][f"model.{manifest['metadata']['project_name']}.{name}"]


def renamed(manifest: dict, old: str, new: str, folder: str) -> dict:
    edited = copy.deepcopy(manifest)
    node = mart(edited, old)
    node["name"] = new
    node["path"] = f"{folder}/{new}.sql"
    node["original_file_path"] = f"models/{folder}/{new}.sql"
    return edited


def test_marts_may_be_named_after_the_lineage_graph(manifest: dict):
    before = set(rules.check(manifest))
    assert set(rules.check(renamed(manifest, "fct_class_metrics", "lineage_nodes", "marts/lineage"))) <= before
    assert set(rules.check(renamed(manifest, "fct_class_metrics", "class_metrics", "marts/evaluation"))) - before == {
        "model class_metrics is in models/marts/evaluation/:"
        " marts model names start with fct_ or dim_ or rpt_ or lineage_"
    }


def test_an_enforced_primary_key_constraint_is_a_primary_key(manifest: dict):
    edited = copy.deepcopy(manifest)
    for test in edited["nodes"].values():  # drop every test of fct_confusion_matrix
        if test.get("attached_node") == "model.ml_eval.fct_confusion_matrix":
            test["attached_node"] = None
    assert not [m for m in rules.check(edited) if m.startswith("model fct_confusion_matrix has no primary-key")]
    mart(edited, "fct_confusion_matrix")["config"]["contract"]["enforced"] = False
    assert "model fct_confusion_matrix has no primary-key test" + NO_KEY in rules.check(edited)


def test_the_catalog_finds_undeclared_and_missing_columns(manifest: dict):
    model = mart(manifest, "int_runs_classified")
    present = {name: {"name": name} for name in model["columns"] if name != "exclusion_reason"}
    present["run_started_at"] = {"name": "run_started_at"}
    catalog = {"nodes": {model["unique_id"]: {"columns": present}}, "sources": {}}
    new = set(rules.check(manifest, catalog)) - set(rules.check(manifest))
    assert new == {
        "model int_runs_classified column run_started_at has no description (not declared in YAML)",
        "model int_runs_classified declares column exclusion_reason, which the relation does not have",
    }


def test_rules_command_is_registered(manifest_path: Path, manifest: dict, capsys):
    from ml_eval import cli

    assert cli.main(["rules", "--no-parse", "--manifest", str(manifest_path)]) == (1 if rules.check(manifest) else 0)
    assert capsys.readouterr().out


def test_a_missing_manifest_is_one_line(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "ml_eval", "rules", "--no-parse", "--manifest", str(tmp_path / "manifest.json")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"ml-eval: error: {tmp_path / 'manifest.json'} not found: run `dbt parse` first"
    ]
