"""Runs tracked by MLflow 2.22 itself, to prove the dbt project reads that schema too.

MLflow 3.17 (this project's MLflow) refuses to write to an older schema, so a 2.22 schema
with real runs in it can only be made by MLflow 2.22. `create_legacy_runs` does that:

1. In our own environment: read and split the seeded Wine data exactly as `ml-eval train`
   does, fit the candidates and score them with scikit-learn (`ml_eval.producer.train.evaluate`).
2. In a separate environment made by uv (`uv tool run --from 'mlflow==2.22.*'`, cached by uv
   after its first use): the script `LEGACY_SCRIPT` receives those results as JSON on stdin
   and logs them through MLflow 2.22's own API: an experiment, one run per candidate (params,
   tags incl. `model_family`, metrics at step 0 plus the per-stage history, the evaluation
   split as a dataset input), a registered model version per run and the `champion` alias.
   Opening the tracking store creates MLflow 2.22's tables (alembic head 0584bdc529eb). It
   prints the run ids and versions as JSON on its last stdout line.
3. Back in our environment: the predictions of each run are written with
   `ml_eval.producer.predictions.write_batch` (psycopg 3, COPY), all in one transaction.

The model versions point at a small `model/estimator.json` artifact (the estimator and its
hyperparameters), not at a pickled model: a pickle made by our scikit-learn would have to be
loaded by whatever scikit-learn uv resolves for MLflow 2.22, and the registry tables, which is
what the dbt project reads, are the same either way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from ml_eval import datasets
from ml_eval.config import Config
from ml_eval.errors import UserError
from ml_eval.producer import predictions
from ml_eval.producer.candidates import Candidate, default_candidates, hyperparameters
from ml_eval.warehouse import Warehouse

log = logging.getLogger(__name__)

MLFLOW_REQUIREMENT = "mlflow==2.22.*"
# psycopg2 is MLflow 2.22's documented PostgreSQL driver; SQLAlchemy 2.1 is newer than 2.22 knows.
EXTRA_REQUIREMENTS = ("psycopg2-binary", "sqlalchemy<2.1")
ALEMBIC_REVISION = "0584bdc529eb"  # the head of MLflow 2.22's migrations
DEFAULT_EXPERIMENT = "wine-classification-mlflow-2.22"
DEFAULT_REGISTERED_MODEL = "wine-classifier"
DEFAULT_CANDIDATES = ("baseline-most-frequent", "logreg-c0.1", "gboost-50x0.3-depth2", "knn-5")
TIMEOUT_SECONDS = 900  # the first use downloads MLflow 2.22 and its dependencies (~100 MB)

# Runs inside the MLflow 2.22 environment: only MLflow 2.22, pandas and the standard library.
LEGACY_SCRIPT = r'''
import json, logging, sys, time, warnings

warnings.simplefilter("ignore")
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.dataset_source import DatasetSource
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

if not mlflow.__version__.startswith("2.22."):
    sys.exit(f"expected MLflow 2.22, got {mlflow.__version__}")


class WarehouseTableSource(DatasetSource):
    """The same source type as ml_eval.producer.tracking.WarehouseTableSource: warehouse tables."""

    def __init__(self, database, tables):
        self.database, self.tables = database, list(tables)

    @staticmethod
    def _get_source_type():
        return "postgresql"

    def load(self, **kwargs):
        raise NotImplementedError

    @staticmethod
    def _can_resolve(raw_source):
        return False

    @classmethod
    def _resolve(cls, raw_source):
        raise NotImplementedError

    def to_dict(self):
        return {"database": self.database, "tables": self.tables}

    @classmethod
    def from_dict(cls, source_dict):
        return cls(source_dict.get("database", ""), source_dict.get("tables", []))


job = json.load(sys.stdin)
uri = job["tracking_uri"]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)

experiment = client.get_experiment_by_name(job["experiment"])
if experiment is None:
    experiment_id = client.create_experiment(job["experiment"], artifact_location=job["artifact_location"])
else:
    experiment_id = experiment.experiment_id

split = job["dataset"]
dataset = mlflow.data.from_pandas(
    pd.DataFrame(split["rows"], columns=split["columns"]),
    source=WarehouseTableSource(split["database"], split["tables"]),
    targets=split["target"],
    name=split["name"],
)

model_name = job["registered_model"]
try:
    client.get_registered_model(model_name)
except MlflowException as exc:
    if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
        raise
    client.create_registered_model(model_name, description=job["registered_model_description"])

done = []
for spec in job["runs"]:
    with mlflow.start_run(experiment_id=experiment_id, run_name=spec["name"], tags=spec["tags"]) as run:
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param(key, value) for key, value in spec["params"].items()])
        mlflow.log_input(dataset, context="evaluation")
        mlflow.log_dict(spec["estimator"], "model/estimator.json")
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, 0) for key, value in spec["metrics"].items()]
        for key, values in spec["history"].items():
            metrics += [Metric(key, value, now, step) for step, value in enumerate(values, start=1)]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        version = client.create_model_version(
            model_name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run_id,
            tags={"model_family": spec["tags"]["model_family"], "run_name": spec["name"]},
        ).version
    done.append({"name": spec["name"], "run_id": run_id, "version": str(version)})

champion = next(run for run in done if run["name"] == job["champion"])
client.set_registered_model_alias(model_name, job["champion_alias"], champion["version"])
print(json.dumps({"mlflow_version": mlflow.__version__, "experiment_id": str(experiment_id), "runs": done}))
'''


@dataclass(frozen=True)
class LegacyRun:
    name: str
    family: str
    run_id: str
    version: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class LegacyResult:
    mlflow_version: str
    experiment_id: str
    runs: list[LegacyRun]
    champion: LegacyRun


def uv_command() -> list[str]:
    """`uv tool run` with MLflow 2.22 and its PostgreSQL driver: uv next to our Python, else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    uv = str(beside) if beside.exists() else shutil.which("uv")
    if uv is None:
        raise UserError("uv is needed to run MLflow 2.22 in its own environment: install it (pip install uv)")
    command = [uv, "tool", "run", "--from", MLFLOW_REQUIREMENT]
    for requirement in EXTRA_REQUIREMENTS:
        command += ["--with", requirement]
    return command


def tracking_uri(warehouse: Warehouse, schema: str) -> str:
    """The warehouse's SQLAlchemy URL with MLflow 2.22's driver, psycopg2."""
    url = warehouse.sqlalchemy_url(schema)
    return "postgresql+psycopg2://" + url.removeprefix("postgresql+psycopg://")


def _revision(conn, schema: str) -> str | None:
    table = sql.Identifier(schema, "alembic_version").as_string(conn)
    if conn.execute("select to_regclass(%s) is null", (table,)).fetchone()[0]:
        return None
    row = conn.execute(
        sql.SQL("select version_num from {}").format(sql.Identifier(schema, "alembic_version"))
    ).fetchone()
    return row[0] if row else None


def _candidates(names: Sequence[str]) -> list[Candidate]:
    known = {candidate.name: candidate for candidate in default_candidates()}
    missing = [name for name in names if name not in known]
    if missing:
        raise UserError(f"unknown candidates {', '.join(missing)}; known: {', '.join(known)}")
    return [known[name] for name in names]


def run_legacy_script(job: dict, timeout: float = TIMEOUT_SECONDS) -> dict:
    """Run LEGACY_SCRIPT under MLflow 2.22 with `job` on stdin; return its JSON result."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update({"DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"})
    command = [*uv_command(), "python", "-c", LEGACY_SCRIPT]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, input=json.dumps(job), capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"MLflow 2.22 did not finish within {timeout:.0f} s ({' '.join(command[:6])} ...)") from None
    log.info("MLflow 2.22 script ran in %.1f s", time.monotonic() - started)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        log.info("MLflow 2.22 script failed:\n%s\n%s", done.stdout, done.stderr)
        raise UserError(f"MLflow 2.22 script exited {done.returncode}: {tail[0]}")
    return json.loads(lines[-1])


def create_legacy_runs(
    warehouse: Warehouse,
    config: Config,
    *,
    mlflow_schema: str | None = None,
    dataset_schema: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    registered_model: str = DEFAULT_REGISTERED_MODEL,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    test_size: float = 0.3,
    random_state: int = 42,
) -> LegacyResult:
    """Track the candidates as MLflow 2.22 runs in `mlflow_schema` and store their predictions.

    The seeds must be loaded. The schema must be empty or already MLflow 2.22's: a schema
    another MLflow release made is refused, since MLflow 2.22 cannot migrate it.
    """
    from ml_eval.mlflow_names import logged_metric_keys, preferred_tag
    from ml_eval.producer.train import RunResult, choose_champion, evaluate, make_split, read_dataset

    mlflow_schema = mlflow_schema or config.mlflow_schema
    dataset_schema = dataset_schema or config.dataset_schema
    metric_keys = logged_metric_keys(config)
    family_tag = preferred_tag(config, "model_family_tags")
    chosen = _candidates(candidates)
    if not chosen:
        raise UserError("no candidate models to track")

    with warehouse.connect(autocommit=True) as conn:
        revision = _revision(conn, mlflow_schema)
        if revision not in (None, ALEMBIC_REVISION):
            raise UserError(
                f"{mlflow_schema}.alembic_version of database {warehouse.database} is at {revision}, not MLflow 2.22's"
                f" {ALEMBIC_REVISION}: MLflow 2.22 cannot write to it; use another database or schema"
            )
        dataset = read_dataset(conn, config.seed_schema)
        split = make_split(dataset, test_size, random_state)
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(mlflow_schema)))

    evaluations, specs, scored = {}, [], []
    for position, candidate in enumerate(chosen, start=1):
        model = candidate.build()
        model.fit(split.x_train, split.y_train)
        evaluation = evaluate(model, split, dataset.labels)
        evaluations[candidate.name] = evaluation
        params = {
            **hyperparameters(model, candidate.hyperparameters),
            "test_size": test_size,
            "split_random_state": random_state,
            "stratify": True,
            "n_train": len(split.y_train),
            "n_test": len(split.y_test),
        }
        specs.append(
            {
                "name": candidate.name,
                "tags": {family_tag: candidate.family, "estimator": type(model).__name__},
                "params": {key: str(value) for key, value in params.items()},
                "metrics": {
                    metric_keys.get("example_count", "example_count"): float(len(split.y_test)),
                    **{metric_keys.get(name, name): value for name, value in evaluation.metrics.items()},
                },
                "history": evaluation.history,
                "estimator": {"class": type(model).__name__, "params": {k: str(v) for k, v in params.items()}},
            }
        )
        # versions are registered in candidate order, so order stands in for the version here
        scored.append(RunResult(candidate.name, candidate.family, "", str(position), evaluation.metrics))
    champion_name = choose_champion(scored).name

    test = split.x_test.assign(**{"class": split.y_test}).reset_index(drop=True)
    columns = {str(column): test[column].tolist() for column in test.columns}  # Python scalars, exact
    artifacts = config.artifacts_dir / warehouse.database / experiment
    artifacts.mkdir(parents=True, exist_ok=True)
    job = {
        "tracking_uri": tracking_uri(warehouse, mlflow_schema),
        "experiment": experiment,
        "artifact_location": artifacts.resolve().as_uri(),
        "registered_model": registered_model,
        "registered_model_description": "Wine classifiers tracked by MLflow 2.22 (tests_python/support).",
        "champion": champion_name,
        "champion_alias": config.var("champion_alias"),
        "dataset": {
            "name": f"{dataset_schema}.samples:test",
            "database": warehouse.database,
            "tables": [f"{dataset_schema}.samples", f"{dataset_schema}.targets"],
            "columns": list(columns),
            "rows": [list(row) for row in zip(*columns.values(), strict=True)],
            "target": "class",
        },
        "runs": specs,
    }
    outcome = run_legacy_script(job)

    families = {candidate.name: candidate.family for candidate in chosen}
    runs = [
        LegacyRun(run["name"], families[run["name"]], run["run_id"], run["version"], evaluations[run["name"]].metrics)
        for run in outcome["runs"]
    ]
    with warehouse.connect() as conn, conn.transaction():
        datasets.ensure_tables(conn, dataset_schema)  # the seeds registered as ml-eval train does
        datasets.register_seeds(conn, config.seed_schema, dataset_schema)
        for run in runs:
            evaluation = evaluations[run.name]
            predictions.write_batch(
                conn,
                run.run_id,
                split.x_test.index.tolist(),
                evaluation.predicted,
                evaluation.probabilities,
                dataset.labels,
                schema=dataset_schema,
            )
    champion = next(run for run in runs if run.name == champion_name)
    return LegacyResult(outcome["mlflow_version"], outcome["experiment_id"], runs, champion)
