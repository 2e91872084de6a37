"""The project builds green (`dbt build --warn-error`) against MLflow 2.22's schema and 3.17's.

Each release gets a fresh database of its own: the seeds, then real runs written by that
MLflow release (2.22 through `tests_python/support/mlflow_legacy.py`, in an environment uv makes; 3.17
through the project's producer, `ml_eval.producer.train`), their predictions, then the build. The
build runs on a copy of the project whose `on-run-start` has the schema check
(`check_mlflow_schema`), unless dbt_project.yml has it already, so it proves both that the
check accepts the two tested revisions and that it names an unknown one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import CONFIG, PROJECT_DIR, drop_database
from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError

REVISIONS = {"2.22": "0584bdc529eb", "3.17": "dc11669786a5"}
CANDIDATES = ("baseline-most-frequent", "logreg-c0.1", "gboost-50x0.3-depth2", "knn-5")
STAGED_MODEL = "gboost-50x0.3-depth2"  # logs staged_log_loss at steps 1..50
HOOK = "{{ check_mlflow_schema(selected_resources) }}"
REGISTRY_TABLES = (
    "registered_models", "registered_model_tags", "registered_model_aliases", "model_versions", "model_version_tags",
)  # fmt: skip
DOCUMENTED_TABLES = {  # design document 000: the MLflow Metadata Database
    "alembic_version", "datasets", "experiment_tags", "experiments", "input_tags", "inputs", "latest_metrics",
    "metrics", "model_version_tags", "model_versions", "params", "registered_model_aliases",
    "registered_model_tags", "registered_models", "runs", "tags", "trace_info", "trace_request_metadata",
    "trace_tags",
}  # fmt: skip


@dataclass(frozen=True)
class Tracked:
    """A database whose MLflow schema one release made, with the runs it tracked."""

    release: str
    warehouse: wh.Warehouse
    run_ids: dict[str, str]  # run name -> run id
    champion_run_id: str


def rows(database: wh.Warehouse, query: str, params: tuple = ()) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(query, params).fetchall()


def columns(database: wh.Warehouse, table: str) -> set[str]:
    return {
        name
        for (name,) in rows(
            database,
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
            (mlflow_schema(), table),
        )
    }


def mlflow_schema() -> str:
    return CONFIG.mlflow_schema


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the dbt project with the MLflow schema check as an on-run-start hook."""
    copy = tmp_path_factory.mktemp("mlflow_versions") / "project"
    copy.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, copy / name)
    for name in ("models", "seeds", "snapshots", "macros", "tests", "analyses"):
        if (PROJECT_DIR / name).exists():
            shutil.copytree(PROJECT_DIR / name, copy / name)
    config = yaml.safe_load((copy / "dbt_project.yml").read_text())
    hooks = config.get("on-run-start") or []
    hooks = [hooks] if isinstance(hooks, str) else list(hooks)
    if not any("check_mlflow_schema" in hook for hook in hooks):
        config["on-run-start"] = [*hooks, HOOK]
        (copy / "dbt_project.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return copy


def _fresh(release: str) -> wh.Warehouse:
    database = wh.resolve(CONFIG).with_database(f"ml_eval_mlflow{release.replace('.', '')}_{os.getpid()}")
    wh.ensure_database(database, fresh=True)
    return database


@pytest.fixture(scope="module")
def mlflow_222(project: Path) -> Iterator[Tracked]:
    """Seeds, four runs tracked by MLflow 2.22 itself (uv environment), predictions, build."""
    from support.mlflow_legacy import create_legacy_runs

    database = _fresh("2.22")
    try:
        run_dbt(["seed"], database, project_dir=project)
        result = create_legacy_runs(database, CONFIG, candidates=CANDIDATES)
        assert result.mlflow_version.startswith("2.22.")
        run_dbt(["build", "--warn-error"], database, project_dir=project)
        yield Tracked("2.22", database, {run.name: run.run_id for run in result.runs}, result.champion.run_id)
    finally:
        drop_database(database)


@pytest.fixture(scope="module")
def mlflow_317(project: Path) -> Iterator[Tracked]:
    """Seeds, the same four candidates trained and tracked by `ml_eval.producer.train` (MLflow 3.17), build."""
    from ml_eval.producer.candidates import default_candidates
    from ml_eval.producer.train import Settings, train

    database = _fresh("3.17")
    try:
        run_dbt(["seed"], database, project_dir=project)
        candidates = [candidate for candidate in default_candidates() if candidate.name in CANDIDATES]
        result = train(database, Settings.from_config(CONFIG), candidates=candidates)
        run_dbt(["build", "--warn-error"], database, project_dir=project)
        yield Tracked("3.17", database, {run.name: run.run_id for run in result.runs}, result.champion.run_id)
    finally:
        drop_database(database)


@pytest.fixture(scope="module", params=sorted(REVISIONS))
def tracked(request: pytest.FixtureRequest) -> Tracked:
    return request.getfixturevalue("mlflow_" + request.param.replace(".", ""))


def test_alembic_revision_is_the_release_s(tracked: Tracked):
    schema = mlflow_schema()
    expected = REVISIONS[tracked.release]
    assert rows(tracked.warehouse, f'select version_num from "{schema}".alembic_version') == [(expected,)]
    assert rows(tracked.warehouse, "select alembic_revision from staging.stg_mlflow__alembic_version") == [(expected,)]


def test_mlflow_222_schema_is_the_documented_one(mlflow_222: Tracked):
    """The 19 tables of design document 000, without 3.x's `workspace` and `inputs.step`."""
    tables = {
        name
        for (name,) in rows(
            mlflow_222.warehouse,
            "select table_name from information_schema.tables where table_schema = %s",
            (mlflow_schema(),),
        )
    }
    assert tables == DOCUMENTED_TABLES
    for table in REGISTRY_TABLES:
        assert "workspace" not in columns(mlflow_222.warehouse, table), table
    assert "step" not in columns(mlflow_222.warehouse, "inputs")


def test_mlflow_317_schema_has_the_columns_staging_defaults(mlflow_317: Tracked):
    """The other side of `column_or_default`: 3.17 has the columns 2.22 lacks."""
    assert "step" in columns(mlflow_317.warehouse, "inputs")
    assert "workspace" in columns(mlflow_317.warehouse, "model_versions")


def test_marts_hold_the_runs(tracked: Tracked):
    database, run_ids = tracked.warehouse, tracked.run_ids
    assert set(run_ids) == set(CANDIDATES)

    evaluated = rows(
        database,
        "select run_uuid, run_name, model_family, n_predictions, agrees_with_mlflow from marts.fct_run_evaluation",
    )
    assert {row[0] for row in evaluated} == set(run_ids.values())
    assert {row[1]: row[2] for row in evaluated} == {
        "baseline-most-frequent": "baseline",
        "logreg-c0.1": "linear",
        "gboost-50x0.3-depth2": "tree_ensemble",
        "knn-5": "knn",
    }
    assert all(row[3] == 54 for row in evaluated)
    assert all(row[4] is True for row in evaluated)  # the logged metrics equal the computed ones

    versions = rows(database, "select workspace, run_uuid, is_champion from marts.dim_model_versions")
    assert {row[1] for row in versions} == set(run_ids.values())
    assert {row[0] for row in versions} == {"default"}
    assert [row[1] for row in versions if row[2]] == [tracked.champion_run_id]

    runs = rows(database, "select run_uuid, is_evaluated, is_champion, registered_versions from marts.dim_runs")
    assert {row[0] for row in runs} == set(run_ids.values())
    assert all(row[1] for row in runs)
    assert [row[0] for row in runs if row[2]] == [tracked.champion_run_id]
    assert all(row[3] for row in runs)

    steps = rows(
        database,
        "select step from marts.fct_metric_history"
        " where run_uuid = %s and metric_key = 'staged_log_loss' order by step",
        (run_ids[STAGED_MODEL],),
    )
    assert [step for (step,) in steps] == list(range(1, 51))


def _operation(args: list[str], database: wh.Warehouse, project: Path) -> tuple[bool, list[str]]:
    """Run a dbt command in-process; return whether it succeeded and its warning and error messages."""
    from dbt.cli.main import dbtRunner

    messages: list[str] = []

    def collect(event) -> None:
        if event.info.level in ("warn", "error"):
            messages.append(event.info.msg)

    os.environ.update(database.env())
    outcome = dbtRunner(callbacks=[collect]).invoke(
        [*args, "--project-dir", str(project), "--profiles-dir", str(project)]
    )
    return outcome.success, messages


@pytest.fixture
def copied_222(mlflow_222: Tracked) -> Iterator[wh.Warehouse]:
    """A copy of the MLflow 2.22 database, for breaking its alembic_version."""
    copy = mlflow_222.warehouse.with_database(f"{mlflow_222.warehouse.database}_copy")
    with copy.connect("postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{copy.database}" with (force)')
        conn.execute(f'create database "{copy.database}" template "{mlflow_222.warehouse.database}"')
    try:
        yield copy
    finally:
        drop_database(copy)


def test_schema_check_passes_the_tested_revisions(tracked: Tracked, project: Path):
    succeeded, messages = _operation(
        ["run-operation", "check_mlflow_schema", "--warn-error"], tracked.warehouse, project
    )
    assert succeeded, messages
    assert messages == []


def test_unknown_revision_is_named(copied_222: wh.Warehouse, project: Path):
    schema = mlflow_schema()
    with copied_222.connect() as conn:
        conn.execute(f"update \"{schema}\".alembic_version set version_num = 'ffffffffffff'")

    succeeded, messages = _operation(["run-operation", "check_mlflow_schema"], copied_222, project)
    assert succeeded  # a warning only, without --warn-error
    assert len(messages) == 1
    assert f"revision ffffffffffff in {schema}.alembic_version of database {copied_222.database}" in messages[0]
    assert "is not one this project is tested against" in messages[0]
    assert "0584bdc529eb (MLflow 2.22), dc11669786a5 (MLflow 3.17)" in messages[0]

    # as the on-run-start hook, --warn-error stops the build before anything is built
    with pytest.raises(UserError, match=r"^dbt build failed: MLflow schema check: revision ffffffffffff in "):
        run_dbt(["build", "--warn-error"], copied_222, project_dir=project)


def test_missing_alembic_version_is_said_and_seeds_alone_are_not_checked(copied_222: wh.Warehouse, project: Path):
    schema = mlflow_schema()
    with copied_222.connect() as conn:
        conn.execute(f'drop table "{schema}".alembic_version cascade')  # and the staging view on it

    succeeded, messages = _operation(["run-operation", "check_mlflow_schema"], copied_222, project)
    assert succeeded
    assert len(messages) == 1
    assert f"table {schema}.alembic_version of database {copied_222.database} does not exist" in messages[0]

    # the seeds step of `ml-eval demo` runs before MLflow has made its tables: not checked
    run_dbt(
        ["build", "--select", "resource_type:seed", "--indirect-selection", "cautious", "--warn-error"],
        copied_222,
        project_dir=project,
    )
    with pytest.raises(UserError, match=r"^dbt build failed: MLflow schema check: table .* does not exist"):
        run_dbt(["build", "--warn-error"], copied_222, project_dir=project)
