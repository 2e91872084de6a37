"""Shared fixtures: a fresh database on the configured warehouse, built once per session.

Every test talks to a real PostgreSQL: the server PGHOST names (CI: 127.0.0.1:5432), or the
embedded one when PGHOST is unset.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml_eval import warehouse as wh

PROJECT_DIR = wh.PROJECT_DIR
ML_EVAL = [sys.executable, "-m", "ml_eval.cli"]


def run_ml_eval(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would, capturing its output."""
    done = subprocess.run(
        [*ML_EVAL, *args],
        cwd=PROJECT_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"ml-eval {' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


@pytest.fixture(scope="session")
def warehouse() -> wh.Warehouse:
    """A fresh database for this test session on the configured server."""
    base = wh.resolve(os.environ)
    fresh = base.with_database(f"ml_eval_pytest_{os.getpid()}")
    wh.ensure_database(fresh, fresh=True)
    yield fresh
    drop_database(fresh)


def drop_database(database: wh.Warehouse) -> None:
    """Drop a test database and the MLflow artifacts `ml-eval train` kept for it."""
    with database.connect("postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{database.database}" with (force)')
    shutil.rmtree(PROJECT_DIR / ".local" / "mlartifacts" / database.database, ignore_errors=True)


@pytest.fixture(scope="session")
def built(warehouse: wh.Warehouse) -> wh.Warehouse:
    """The main job run into the session's database, with dbt's --warn-error and no docs:
    the seeds with their tests, `ml-eval train`, then `dbt build` (`ml-eval demo`)."""
    run_ml_eval("demo", "--warn-error", "--no-docs", env={**warehouse.env()})
    return warehouse


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A copy of the dbt project whose files a test may break on purpose."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy(PROJECT_DIR / name, copy / name)
    for name in ("models", "seeds", "macros", "tests", "analyses"):
        if (PROJECT_DIR / name).exists():
            shutil.copytree(PROJECT_DIR / name, copy / name)
    return copy
