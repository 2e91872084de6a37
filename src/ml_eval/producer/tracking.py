"""MLflow on the warehouse: tracking store, experiment, dataset source, and how models are saved.

MLflow's tracking and registry store is the warehouse itself (`Warehouse.sqlalchemy_url`),
with its tables in their own schema (`Config.mlflow_schema`, default `mlflow`, created
here; MLflow creates its tables there on first use through the URL's search_path).
Artifacts go to `.local/mlartifacts/<database>/` in the project (`Config.artifacts_dir`).

How models are saved (skops, with trusted types computed from each model)
-----------------------------------------------------------------------------
MLflow 3.17 saves scikit-learn models in the `skops` format by default and, right after
saving, loads them back with `skops_trusted_types` as the allow-list, so it refuses any
model holding a type skops does not trust by default: `sklearn.tree._tree.Tree` inside
gradient boosting, `KDTree` and `EuclideanDistance64` inside k-nearest-neighbours,
`_CalibratedClassifier` inside the calibrated SVM. We keep skops rather than switching to
pickle/cloudpickle (which run arbitrary code when loaded) and pass, per model, exactly the
types skops reports as untrusted in that fitted model (`skops.io.get_untrusted_types`),
after checking that every one of them is defined by scikit-learn; a model containing any
other untrusted type is refused and its run fails. The list is stored in the model's
MLmodel file, so loading a model still trusts whoever wrote the artifact store: MLflow
also requires `MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true` to load any sklearn model.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.data.dataset_source import DatasetSource
from psycopg import sql

from ml_eval.warehouse import Warehouse

log = logging.getLogger(__name__)

TRUSTED_MODULE_PREFIX = "sklearn."


def quiet_mlflow() -> None:
    """MLflow logs at INFO and warns a lot; keep its warnings and errors only, and no telemetry.

    MLflow honours DO_NOT_TRACK only when it is "true" (the Makefile exports 1), so say it
    its own way too.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def mlflow_quietly():
    """Silence the deprecation and hint warnings MLflow and its dependencies raise per call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
        warnings.filterwarnings("ignore", message=r".*pydantic.*")
        yield


def tracking_uri(warehouse: Warehouse, schema: str) -> str:
    """Create MLflow's schema if missing and return the tracking (and registry) URI for it."""
    with warehouse.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        first_time = conn.execute(
            "select to_regclass(%s) is null", (sql.Identifier(schema, "alembic_version").as_string(conn),)
        ).fetchone()[0]
    if first_time:
        log.info("MLflow creates its tables in schema %s of database %s", schema, warehouse.database)
    return warehouse.sqlalchemy_url(schema)


def ensure_store(warehouse: Warehouse, schema: str) -> str:
    """Have MLflow create (or upgrade-check) its tables in `schema`; return the tracking URI.

    dbt reads MLflow's tables as sources, so they must exist before the first build, even
    when no model has run yet. They are made by MLflow's own library, never by hand.
    """
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(warehouse, schema)
    quiet_mlflow()
    with mlflow_quietly():
        MlflowClient(uri, uri).search_experiments(max_results=1)
    return uri


def artifact_location(artifacts_dir: Path, database: str, experiment: str) -> str:
    """A file: URI under `artifacts_dir` (.local/mlartifacts), one folder per database and experiment."""
    path = artifacts_dir / database / experiment
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve().as_uri()


def git_commit(directory: Path) -> str | None:
    """The checked-out commit of the project, or None outside a git checkout with a commit."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def skops_trusted_types(model: Any) -> list[str]:
    """The types skops would not load from `model` by default; all must come from scikit-learn."""
    import skops.io

    untrusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    foreign = [name for name in untrusted if not name.startswith(TRUSTED_MODULE_PREFIX)]
    if foreign:
        raise ValueError(f"refusing to save a model holding types outside scikit-learn: {', '.join(foreign)}")
    return untrusted


class WarehouseTableSource(DatasetSource):
    """An MLflow dataset source: rows read from PostgreSQL tables of the warehouse."""

    def __init__(self, database: str, schema: str, tables: list[str]):
        self.database, self.schema, self.tables = database, schema, list(tables)

    @staticmethod
    def _get_source_type() -> str:
        return "postgresql"

    def load(self, **kwargs):
        raise NotImplementedError("read the tables with ml_eval.train.read_dataset")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any):
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"database": self.database, "tables": [f"{self.schema}.{table}" for table in self.tables]}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]):
        names = [name.split(".", 1) for name in source_dict.get("tables", [])]
        schema = names[0][0] if names else ""
        return cls(source_dict.get("database", ""), schema, [table for _, table in names])
