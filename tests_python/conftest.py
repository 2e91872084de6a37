"""Shared fixtures: a fresh database on the configured warehouse, built once per session.

Every test talks to a real PostgreSQL: the server PGHOST names (CI: 127.0.0.1:5432), or the
embedded one when PGHOST is unset.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ml_eval import warehouse as wh
from ml_eval.config import Config

PROJECT_DIR = Path(__file__).resolve().parents[1]  # the checkout these tests belong to
ML_EVAL = [sys.executable, "-m", "ml_eval"]
# the configuration every test shares: this checkout's project, the environment's settings
CONFIG = Config.resolve(project_dir=PROJECT_DIR)


def run_ml_eval(
    *args: str, env: dict | None = None, check: bool = True, cwd: Path = PROJECT_DIR
) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would (from the project's directory), capturing its output."""
    done = subprocess.run(
        [*ML_EVAL, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"ml-eval {' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


# `make test` runs pytest on two workers (pytest-xdist, `--dist loadscope
# --no-loadscope-reorder`): a module is one unit of work, so its module-scoped fixtures run
# once, in the order below (the longest first, so neither worker is left with one at the end).
# test_trust alone uses the server's default role names (roles belong to the server, not to a
# database); as a module runs on one worker, no other test sees them half-made. Every other
# shared name carries the worker's pid (databases, role prefixes) or a free port.
# A worker's modules share its session database `built`: they read it, or clone it to change it.
# (xdist's `loadgroup` did not serve: under pytest 9.2 its group suffix never reaches the node
# id, so every test was a unit of its own and module fixtures ran once per worker.)
LONGEST_FIRST = ("test_trust.py", "test_changes.py", "test_sync_mlflow.py", "test_mlflow_versions.py",
                 "test_mlflow_elsewhere.py", "test_promotion.py", "test_side_by_side.py", "test_seeds.py",
                 "test_bring_your_own.py", "test_publish.py", "test_metric_names.py", "test_comparisons.py",
                 "test_completeness.py", "test_project_rules.py", "test_scale.py", "test_package.py")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module keeps its order


@pytest.fixture(scope="module", autouse=True)
def module_environment():
    """What a module sets in os.environ (run_dbt's PG* variables, MLflow's tracking URI) ends
    with it: the next module on the same worker starts from the session's environment."""
    saved = dict(os.environ)
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:  # set_tracking_uri keeps the URI in MLflow's globals as well
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session", autouse=True)
def worker_target_path(tmp_path_factory) -> None:
    """Each xdist worker keeps dbt's artifacts and logs (partial parsing, run_results.json, the
    docs and the report) in a directory of its own, so two workers never share one target/."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("DBT_TARGET_PATH"):
        artifacts = tmp_path_factory.mktemp("worker_dbt")
        os.environ["DBT_TARGET_PATH"] = str(artifacts / "target")
        os.environ["DBT_LOG_PATH"] = str(artifacts / "logs")


@pytest.fixture(scope="session")
def warehouse() -> wh.Warehouse:
    """A fresh database for this test session on the configured server, named
    <ML_EVAL_TEST_DATABASE_PREFIX, default ml_eval_pytest>_<pid> (a shared server may ask each
    user for a prefix of their own)."""
    base = wh.resolve(CONFIG)
    prefix = os.environ.get("ML_EVAL_TEST_DATABASE_PREFIX") or "ml_eval_pytest"
    fresh = base.with_database(f"{prefix}_{os.getpid()}")
    wh.ensure_database(fresh, fresh=True)
    yield fresh
    drop_database(fresh)


def drop_database(database: wh.Warehouse) -> None:
    """Drop a test database and the MLflow artifacts `ml-eval train` kept for it."""
    with database.connect("postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{database.database}" with (force)')
    shutil.rmtree(CONFIG.artifacts_dir / database.database, ignore_errors=True)


def clone_database(source: wh.Warehouse, name: str) -> wh.Warehouse:
    """A fresh copy of `source` named `name` (CREATE DATABASE ... TEMPLATE), as source's role.

    A template must have no other connection: any left by dbt or MLflow is ended first."""
    copy = source.with_database(name)
    with source.connect("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        for attempt in range(5):
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                (source.database,),
            )
            try:
                conn.execute(
                    sql.SQL("create database {} template {}").format(
                        sql.Identifier(name), sql.Identifier(source.database)
                    )
                )
                return copy
            except psycopg.errors.ObjectInUse:
                if attempt == 4:
                    raise
                time.sleep(0.2)
    return copy


@pytest.fixture(scope="session")
def built(warehouse: wh.Warehouse) -> wh.Warehouse:
    """The main job run into the session's database, with dbt's --warn-error and no docs:
    the seeds with their tests, `ml-eval train`, then `dbt build` (`ml-eval demo`).

    `make test` runs exactly that job into database ml_eval_ci just before pytest, and names
    it in ML_EVAL_TEST_BUILT_FROM: then the session's database is a copy of it (CREATE
    DATABASE ... TEMPLATE) rather than a second run of the same job. Its MLflow artifacts stay
    where that job wrote them, which the copy's runs point at."""
    source = os.environ.get("ML_EVAL_TEST_BUILT_FROM")
    if source:
        return clone_database(warehouse.with_database(source), warehouse.database)
    run_ml_eval("demo", "--warn-error", "--no-docs", env={**warehouse.env()})
    return warehouse


LONG_HISTORY = 130_000  # metric rows of log_long_history's run: a sync prints progress at 100,000


def log_long_history(client, run_id: str) -> None:
    """130,000 rows of one metric for the run, through MLflow's client, 1,000 per batch."""
    from mlflow.entities import Metric

    for start in range(0, LONG_HISTORY, 1000):
        client.log_batch(run_id, metrics=[Metric("long", step / 7, step, step) for step in range(start, start + 1000)])


def kill_midway_through_sync(*args: str, env: dict | None = None) -> None:
    """Run `ml-eval <args>` and SIGKILL it once its sync has read 100,000 metric rows."""
    process = subprocess.Popen(
        [*ML_EVAL, *args],
        cwd=PROJECT_DIR,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if line.startswith("sync-mlflow: metrics: 100000 rows read"):
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, seen


def migrated_file_store(work: Path, log_runs) -> Path:
    """A real MLflow 3.17 file store under `work`, into which `log_runs(uri)` logs, migrated
    by MLflow's own `mlflow migrate-filestore` into a SQLite file; returns the file. The file
    store's experiment ids (a timestamp and random bits) do not fit 32 bits."""
    root = work / "files"
    allowed = {"MLFLOW_ALLOW_FILE_STORE": "true"}  # 3.17 keeps the file store only on request
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        log_runs((root / "mlruns").as_uri())
    target = work / "migrated.db"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlflow"), "migrate-filestore", "--source", str(root),
         "--target", f"sqlite:///{target}"],
        capture_output=True, text=True, env={**os.environ, **allowed, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def copy_project(copy: Path) -> Path:
    """A copy of the dbt project at `copy` (no target/): its files may be broken on purpose."""
    copy.mkdir(parents=True)
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, copy / name)
    for name in ("models", "seeds", "snapshots", "macros", "tests", "analyses"):
        if (PROJECT_DIR / name).exists():
            shutil.copytree(PROJECT_DIR / name, copy / name)
    return copy


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A copy of the dbt project whose files a test may break on purpose."""
    return copy_project(tmp_path / "project")


def register_wine(database: wh.Warehouse, *, from_files: bool = False) -> None:
    """Register the Wine seeds in the Dataset Database, as `ml-eval train` does first: from the
    loaded seed tables, or (`from_files`, before any seed load) from the seed CSV files."""
    from ml_eval import datasets

    with database.connect() as conn, conn.transaction():
        datasets.ensure_tables(conn, CONFIG.dataset_schema)
        if not from_files:
            datasets.register_seeds(conn, CONFIG.seed_schema, CONFIG.dataset_schema)
            return
        name, table = datasets.read_wine_seed_files(PROJECT_DIR / "seeds" / "dataset")
        datasets.load_dataset(conn, CONFIG.dataset_schema, name, table)


@pytest.fixture(scope="module")
def isolated_environment(tmp_path_factory):
    """dbt writes its artifacts (run_results.json, which `dbt retry` reads) to a directory of
    the module's own, MLflow keeps no pooled connection (so databases can be cloned), and
    run_dbt's PG* changes do not leak. A module asks for it with
    `pytestmark = pytest.mark.usefixtures("isolated_environment")`."""
    keys = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "DBT_TARGET_PATH", "DBT_LOG_PATH",
            "MLFLOW_SQLALCHEMYSTORE_POOLCLASS")  # fmt: skip
    saved = {key: os.environ.get(key) for key in keys}
    artifacts = tmp_path_factory.mktemp("dbt")
    os.environ["DBT_TARGET_PATH"] = str(artifacts / "target")
    os.environ["DBT_LOG_PATH"] = str(artifacts / "logs")
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
