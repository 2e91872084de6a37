"""Made-up evaluation data at any scale: R MLflow runs x S predictions each, deterministically.

Every run is a real MLflow run, registered through the MLflow library (`MlflowClient`: one
`create_run`, one `log_batch` with its params and metric history, one `set_terminated` per
run, in a few threads) in one experiment, `scale`. Its predictions and class probabilities
go into the producer's tables (`dataset.predictions`, `dataset.prediction_scores`) with one
binary COPY per chunk of runs (`copy_predictions`), the bulk twin of
`predictions.write_batch`: the same columns, ids from the table's own identity sequence.

Everything but MLflow's run ids (uuid4) is a function of `seed` and the run's ordinal: a run
has a skill, its class probabilities are a softmax of noisy logits favouring the true class,
the predicted class is their argmax, and every fifth run rounds its probabilities to one
decimal, so tied scores occur as they do with k-nearest-neighbours or trees.

Samples. With S <= 178 the runs predict the first S Wine samples (the seeds, registered as
dataset "UCI Wine"). The seeds hold no more, so with S > 178 the runs predict a synthetic
dataset, "synthetic (ml-eval scale)": S samples made from Wine samples of the same class
plus noise, registered in the Dataset Database beside Wine through its loader
(`ml_eval.datasets.load_dataset`), as a team's own dataset would be.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from ml_eval import datasets
from ml_eval.config import Config
from ml_eval.errors import UserError
from ml_eval.mlflow_names import preferred_tag
from ml_eval.producer import predictions as pred
from ml_eval.warehouse import Warehouse

log = logging.getLogger(__name__)

CLASSES = (1, 2, 3)
WINE_SAMPLES = 178
SYNTHETIC_DATASET_NAME = "synthetic (ml-eval scale)"
EXPERIMENT = "scale"
FAMILIES = ("logistic_regression", "random_forest", "gradient_boosting", "k_neighbors", "svm")
HISTORY_STEPS = 5
CHUNK_PREDICTIONS = 250_000  # predictions per COPY transaction
THREADS = 4  # MLflow calls wait on the database most of the time: a few threads overlap them


def parse_size(text: str) -> tuple[int, int]:
    """`1000x1000` -> (1000 runs, 1000 samples); `10,000x1,000` and `_` separators are accepted."""
    match = re.fullmatch(r"\s*([\d,_]+)\s*[xX×]\s*([\d,_]+)\s*", text)
    if not match:
        raise UserError(f"a size is RUNSxSAMPLES, e.g. 1000x1000; got {text!r}")
    runs, samples = (int(part.replace(",", "").replace("_", "")) for part in match.groups())
    if runs < 1 or samples < 1:
        raise UserError(f"a size needs at least one run and one sample; got {text!r}")
    return runs, samples


# ---------------------------------------------------------------------------------------------
# samples and targets


@dataclass(frozen=True)
class Samples:
    """The samples the runs predict and their true classes."""

    dataset_id: int
    sample_index: np.ndarray  # int64, ascending
    truth: np.ndarray  # int64 class labels 1..3


def _schema(schema: str) -> sql.Identifier:
    return sql.Identifier(schema)


def ensure_samples(
    conn: psycopg.Connection, n_samples: int, seed: int = 0, *, schema: str, seed_schema: str = "wine"
) -> Samples:
    """The first `n_samples` Wine samples, or (above 178) a synthetic dataset, registered if missing.

    The seeds must be loaded; both datasets are registered in the Dataset Database through
    its loader (`ml_eval.datasets`), so a second call with the same size changes nothing.
    """
    with conn.transaction():
        datasets.ensure_tables(conn, schema)
        wine = datasets.register_seeds(conn, seed_schema, schema)
    if n_samples <= WINE_SAMPLES:
        if wine.n_samples < n_samples:
            raise UserError(f"the Wine seeds hold {wine.n_samples} samples, fewer than {n_samples}")
        return _registered(conn, schema, wine.dataset_id, n_samples)
    with conn.transaction():
        registered = datasets.load_dataset(
            conn,
            schema,
            SYNTHETIC_DATASET_NAME,
            _synthetic(conn, n_samples, seed, schema, wine.dataset_id),
            replace=True,
        )
    if registered.status != "unchanged":
        log.info("registered %d synthetic samples as dataset %d", n_samples, registered.dataset_id)
    return _registered(conn, schema, registered.dataset_id, n_samples)


def _registered(conn: psycopg.Connection, schema: str, dataset_id: int, n_samples: int) -> Samples:
    rows = conn.execute(
        sql.SQL(
            "select t.sample_index, t.class from {s}.targets as t join {s}.samples as s using (sample_index)"
            " where s.dataset_id = %s order by t.sample_index limit %s"
        ).format(s=_schema(schema)),
        (dataset_id, n_samples),
    ).fetchall()
    return Samples(dataset_id, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]))


def _synthetic(conn: psycopg.Connection, n_samples: int, seed: int, schema: str, wine_id: int) -> datasets.Table:
    """`n_samples` synthetic samples (keys s0, s1, ...): Wine samples of the same class plus noise."""
    features_sql = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in datasets.WINE_COLUMNS)
    wine = conn.execute(
        sql.SQL(
            "select {f}, t.class from {s}.samples as s join {s}.targets as t using (sample_index)"
            " where s.dataset_id = %s order by s.sample_index"
        ).format(f=features_sql, s=_schema(schema)),
        (wine_id,),
    ).fetchall()
    features = np.array([row[:-1] for row in wine], dtype=float)
    wine_class = np.array([row[-1] for row in wine])
    low, high, spread = features.min(axis=0), features.max(axis=0), features.std(axis=0)
    # the class of synthetic sample i does not depend on how many samples are asked for
    classes = np.random.default_rng([seed, 1_000_004]).choice(wine_class, size=n_samples)
    rows = []
    for position in range(n_samples):
        label = int(classes[position])
        rng = np.random.default_rng([seed, 1_000_005, position])
        template = features[rng.choice(np.flatnonzero(wine_class == label))]
        rows.append(np.clip(template + rng.normal(0.0, 0.05, len(spread)) * spread, low, high))
    columns = {"sample_key": [f"s{i}" for i in range(n_samples)], "target": [str(int(c)) for c in classes]}
    for j, column in enumerate(datasets.WINE_COLUMNS):
        columns[column] = [float(row[j]) for row in rows]
    return datasets.Table(columns, SYNTHETIC_DATASET_NAME)


# ---------------------------------------------------------------------------------------------
# predictions


@dataclass
class RunData:
    """One made-up run: its predictions, probabilities and the metrics it logs."""

    ordinal: int
    sample_index: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray  # (n, 3), rows sum to 1
    family: str
    skill: float
    metrics: dict[str, float]
    history: dict[str, list[float]]
    run_id: str = ""


def make_run(ordinal: int, samples: Samples, seed: int = 0) -> RunData:
    """The run with this ordinal: a deterministic function of (seed, ordinal, samples)."""
    rng = np.random.default_rng([seed, ordinal])
    n = len(samples.truth)
    skill = float(rng.uniform(0.2, 3.5))
    logits = rng.normal(0.0, 1.0, (n, len(CLASSES))) + rng.normal(0.0, 0.3, len(CLASSES))
    logits[np.arange(n), samples.truth - 1] += skill
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    if ordinal % 5 == 4:  # coarse scores with ties, as kNN or a shallow tree gives
        proba = np.round(proba, 1)
        proba /= proba.sum(axis=1, keepdims=True)
    predicted = proba.argmax(axis=1) + 1
    accuracy = float(np.mean(predicted == samples.truth))
    steps = np.arange(1, HISTORY_STEPS + 1)
    train_loss = (1.2 / steps + rng.normal(0.0, 0.02, HISTORY_STEPS) + 0.3 / skill).tolist()
    val_accuracy = np.clip(accuracy - 0.3 / steps + rng.normal(0.0, 0.01, HISTORY_STEPS), 0, 1).tolist()
    return RunData(
        ordinal=ordinal,
        sample_index=samples.sample_index,
        predicted=predicted,
        probabilities=proba,
        family=FAMILIES[ordinal % len(FAMILIES)],
        skill=skill,
        metrics={"accuracy_score": accuracy, "example_count": float(n)},
        history={"train_loss": train_loss, "val_accuracy": val_accuracy},
    )


def _reserve_ids(conn: psycopg.Connection, count: int, schema: str) -> np.ndarray:
    """`count` prediction ids from the table's identity sequence (as write_batch takes them)."""
    sequence = f'"{schema}".predictions'
    low, high, ids = conn.execute(
        "select min(v), max(v), case when max(v) - min(v) + 1 <> count(*) then array_agg(v order by v) end"
        " from (select pg_catalog.nextval(pg_catalog.pg_get_serial_sequence(%s, 'prediction_id')) as v"
        " from pg_catalog.generate_series(1, %s)) as reserved",
        (sequence, count),
    ).fetchone()
    if ids is not None:  # another writer took ids in between: ours are not one block
        return np.array(ids, dtype=np.int64)
    return np.arange(low, high + 1, dtype=np.int64)


_HEADER = b"PGCOPY\n\xff\r\n\x00" + np.array([0, 0], dtype=">i4").tobytes()
_TRAILER = np.array([-1], dtype=">i2").tobytes()


def _binary_rows(fields: list[tuple[str, np.ndarray]]) -> bytes:
    """COPY BINARY rows of fixed-width fields: (pg type, big-endian column) pairs."""
    n = len(fields[0][1])
    dtype = [("n", ">i2")]
    for i, (_, column) in enumerate(fields):
        dtype += [(f"l{i}", ">i4"), (f"v{i}", column.dtype)]
    rows = np.empty(n, dtype=dtype)
    rows["n"] = len(fields)
    for i, (_, column) in enumerate(fields):
        rows[f"l{i}"] = column.dtype.itemsize
        rows[f"v{i}"] = column
    return _HEADER + rows.tobytes() + _TRAILER


def copy_predictions(
    conn: psycopg.Connection,
    runs: Sequence[RunData],
    classes: Sequence[int] = CLASSES,
    *,
    schema: str,
    dataset_id: int,
) -> int:
    """Write the predictions and class probabilities of many runs with one binary COPY each.

    The bulk twin of `predictions.write_batch` (same rows, ids from the same sequence, each
    run declared on `dataset_id` in run_datasets); the caller owns the transaction. Returns
    the number of predictions.
    """
    if not runs:
        return 0
    name = _schema(schema)
    with conn.cursor().copy(sql.SQL("copy {}.run_datasets (run_uuid, dataset_id) from stdin").format(name)) as copy:
        for run in runs:
            copy.write_row((run.run_id, dataset_id))
    run_ids = [run.run_id.encode() for run in runs]
    width = len(run_ids[0])
    if any(len(run_id) != width for run_id in run_ids):
        raise ValueError("run ids differ in length")  # MLflow's are 32 hex digits
    sizes = np.array([len(run.predicted) for run in runs])
    total = int(sizes.sum())
    ids = _reserve_ids(conn, total, schema)
    prediction_fields = [
        ("prediction_id", ids.astype(">i4")),
        ("sample_index", np.concatenate([run.sample_index for run in runs]).astype(">i4")),
        ("prediction_index", np.concatenate([np.arange(size) for size in sizes]).astype(">i4")),
        ("class", np.concatenate([run.predicted for run in runs]).astype(">i4")),
        ("run_uuid", np.repeat(np.array(run_ids, dtype=f"S{width}"), sizes)),
    ]
    k = len(classes)
    proba = np.concatenate([run.probabilities for run in runs])
    if proba.shape != (total, k):
        raise ValueError(f"probabilities must have one column per class ({k})")
    score_fields = [
        ("prediction_id", np.repeat(ids, k).astype(">i4")),
        ("class", np.tile(np.asarray(classes), total).astype(">i4")),
        ("probability", proba.reshape(-1).astype(">f8")),
    ]
    with conn.cursor() as cur:
        columns = sql.SQL(", ").join(sql.Identifier(column) for column, _ in prediction_fields)
        with cur.copy(sql.SQL("copy {}.predictions ({}) from stdin (format binary)").format(name, columns)) as copy:
            copy.write(_binary_rows(prediction_fields))
        columns = sql.SQL(", ").join(sql.Identifier(column) for column, _ in score_fields)
        with cur.copy(
            sql.SQL("copy {}.prediction_scores ({}) from stdin (format binary)").format(name, columns)
        ) as copy:
            copy.write(_binary_rows(score_fields))
    return total


# ---------------------------------------------------------------------------------------------
# MLflow runs


@dataclass
class Generated:
    """What `generate` wrote, and how long each part took."""

    run_ids: list[str] = field(default_factory=list)
    n_predictions: int = 0
    mlflow_seconds: float = 0.0
    copy_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def n_runs(self) -> int:
        return len(self.run_ids)


def mlflow_client(warehouse: Warehouse, schema: str):
    """An MlflowClient on the warehouse's MLflow schema (quiet, no telemetry)."""
    from ml_eval.producer import tracking

    tracking.quiet_mlflow()
    import mlflow

    uri = tracking.tracking_uri(warehouse, schema)
    with tracking.mlflow_quietly():
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client, warehouse: Warehouse, config: Config, name: str) -> str:
    from ml_eval.producer import tracking

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = tracking.artifact_location(config.artifacts_dir, warehouse.database, name)
    return client.create_experiment(name, artifact_location=location)


def _start(client, experiment_id: str, run: RunData, started_ms: int, family_tag: str) -> str:
    from mlflow.entities import Metric, Param

    created = client.create_run(
        experiment_id,
        start_time=started_ms,
        run_name=f"scale-{run.ordinal:05d}",
        tags={family_tag: run.family, "generator": "ml_eval.bench.scale"},
    )
    run_id = created.info.run_id
    metrics = [Metric(key, value, started_ms, 0) for key, value in run.metrics.items()]
    for key, values in run.history.items():
        metrics += [Metric(key, value, started_ms + step, step) for step, value in enumerate(values, start=1)]
    params = [Param("skill", f"{run.skill:.6f}"), Param("family", run.family), Param("ordinal", str(run.ordinal))]
    client.log_batch(run_id, metrics=metrics, params=params)
    return run_id


def generate(
    warehouse: Warehouse,
    config: Config,
    n_runs: int,
    n_samples: int,
    *,
    seed: int = 0,
    first_ordinal: int = 0,
    status: str = "FINISHED",
    threads: int = THREADS,
    experiment: str = EXPERIMENT,
    report: Callable[[str], None] | None = None,
) -> Generated:
    """Register `n_runs` MLflow runs with `n_samples` predictions each; the seeds must be loaded.

    Per chunk of runs: create the runs (RUNNING) with their params and metric history, COPY
    their predictions in one transaction, then mark them `status` (FINISHED, FAILED, or
    RUNNING to leave them running), the order the real producer follows.
    """
    from ml_eval.producer import tracking

    started = time.perf_counter()
    done = Generated()
    client = mlflow_client(warehouse, config.mlflow_schema)
    with warehouse.connect() as conn, tracking.mlflow_quietly():
        with conn.transaction():
            pred.ensure_tables(conn, config.dataset_schema)
            samples = ensure_samples(
                conn, n_samples, seed, schema=config.dataset_schema, seed_schema=config.seed_schema
            )
        experiment_id = _experiment_id(client, warehouse, config, experiment)
        family_tag = preferred_tag(config, "model_family_tags")
        per_chunk = max(1, CHUNK_PREDICTIONS // n_samples)
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for chunk_start in range(first_ordinal, first_ordinal + n_runs, per_chunk):
                ordinals = range(chunk_start, min(chunk_start + per_chunk, first_ordinal + n_runs))
                runs = [make_run(ordinal, samples, seed) for ordinal in ordinals]
                now = int(time.time() * 1000)
                t0 = time.perf_counter()
                for run, run_id in zip(
                    runs,
                    pool.map(lambda r, now=now: _start(client, experiment_id, r, now, family_tag), runs),
                    strict=True,
                ):
                    run.run_id = run_id
                done.mlflow_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                with conn.transaction():
                    done.n_predictions += copy_predictions(
                        conn, runs, schema=config.dataset_schema, dataset_id=samples.dataset_id
                    )
                done.copy_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                if status != "RUNNING":
                    end = int(time.time() * 1000)
                    list(pool.map(lambda r, end=end: client.set_terminated(r.run_id, status, end_time=end), runs))
                done.mlflow_seconds += time.perf_counter() - t0
                done.run_ids += [run.run_id for run in runs]
                tenths = 10 * len(done.run_ids) // n_runs
                if report and tenths > 10 * (len(done.run_ids) - len(runs)) // n_runs:  # every tenth
                    report(f"generated {len(done.run_ids)}/{n_runs} runs, {done.n_predictions:,} predictions")
    done.seconds = time.perf_counter() - started
    return done


def analyze(warehouse: Warehouse, config: Config) -> None:
    """Vacuum and analyze the tables the generator wrote, as autovacuum would after a while."""
    tables = [(config.dataset_schema, name) for name in ("predictions", "prediction_scores", "samples", "targets")]
    tables += [(config.mlflow_schema, name) for name in ("runs", "metrics", "latest_metrics", "params", "tags")]
    with warehouse.connect(autocommit=True) as conn:
        for schema, name in tables:
            conn.execute(sql.SQL("vacuum (analyze) {}").format(sql.Identifier(schema, name)))
