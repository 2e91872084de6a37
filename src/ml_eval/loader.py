"""The checked way a run's predictions come in: `ml-eval load-predictions` and `log_predictions`.

A run's predictions are given by the dataset's own sample keys and labels, and optionally one
probability per class of the dataset. Everything is checked before anything is written — the
run is in MLflow, the dataset is registered and is the run's, every key is a sample of it and
occurs once, every label is one of its classes, every probability is in [0, 1] and each row's
sum is 1 within var `probability_tolerance` — and a refusal is one line naming the first bad
row and how many are bad. Then the rows are written with COPY in one transaction; `replace`
swaps a run's predictions for the new ones in that same transaction.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ml_eval import datasets as ds
from ml_eval.errors import UserError
from ml_eval.producer import predictions as pred

PROBA_PREFIX = "proba_"


@dataclass(frozen=True)
class Loaded:
    run_uuid: str
    dataset: str
    n_predictions: int
    n_replaced: int
    scored: bool


def _labels_text(values: Sequence[object]) -> list[str | None]:
    return [ds.label_text(v) for v in values]


def load_predictions(
    conn: psycopg.Connection,
    *,
    dataset_schema: str,
    mlflow_schema: str,
    run_uuid: str,
    dataset: str,
    sample_keys: Sequence[object],
    predicted: Sequence[object],
    probabilities: Sequence[Sequence[float]] | None = None,
    labels: Sequence[object] | None = None,
    replace: bool = False,
    tolerance: float = 1e-6,
    where: str = "predictions",
) -> Loaded:
    """Check, then write one run's predictions in the caller's transaction (see the module)."""
    run_uuid = str(run_uuid)
    keys = _labels_text(sample_keys)
    guesses = _labels_text(predicted)
    total = len(keys)
    if total == 0:
        raise UserError(f"{where}: no predictions")
    if len(guesses) != total:
        raise UserError(f"{where}: {total} sample keys but {len(guesses)} predicted labels")
    ds.ensure_tables(conn, dataset_schema)
    _require_run(conn, mlflow_schema, run_uuid)
    dataset_id, classes = ds.dataset_classes(conn, dataset_schema, dataset)
    declared = conn.execute(
        sql.SQL("select d.name from {} as r join {} as d using (dataset_id) where r.run_uuid = %s").format(
            sql.Identifier(dataset_schema, "run_datasets"), sql.Identifier(dataset_schema, "datasets")
        ),
        (run_uuid,),
    ).fetchone()
    if declared and declared[0] != dataset:
        raise UserError(
            f"run {run_uuid} is evaluated on dataset {declared[0]!r}, not {dataset!r}:"
            " a run's predictions are all on one dataset"
        )

    missing = [i for i, key in enumerate(keys) if key is None]
    if missing:
        raise ds.refusal(f"{where}: sample_key is empty", missing, total=total)
    first: dict[str, int] = {}
    repeated = [i for i, key in enumerate(keys) if first.setdefault(key, i) != i]
    if repeated:
        raise ds.refusal(f"{where}: sample_key occurs more than once", repeated, keys, total)
    # the samples cannot change under this load: a concurrent load-dataset --replace waits
    conn.execute(sql.SQL("lock table {} in share mode").format(sql.Identifier(dataset_schema, "samples")))
    held_samples = conn.execute(
        sql.SQL(
            "select s.sample_key, s.sample_index, t.class from {} as s left join {} as t using (sample_index)"
            " where s.dataset_id = %s"
        ).format(sql.Identifier(dataset_schema, "samples"), sql.Identifier(dataset_schema, "targets")),
        (dataset_id,),
    ).fetchall()
    index_of = {key: index for key, index, _ in held_samples}
    target_of = {key: target for key, _, target in held_samples}
    unknown = [i for i, key in enumerate(keys) if key not in index_of]
    if unknown:
        raise ds.refusal(f"{where}: sample_key is not a sample of dataset {dataset!r}", unknown, keys, total)
    outside = [i for i, label in enumerate(guesses) if label not in classes]
    if outside:
        raise ds.refusal(
            f"{where}: predicted label {guesses[outside[0]]!r} is not a class of dataset {dataset!r}"
            f" ({', '.join(sorted(classes, key=classes.get))})",
            outside,
            keys,
            total,
        )

    score_classes: list[int] = []
    matrix: list[list[float]] | None = None
    if probabilities is not None:
        column_labels = _labels_text(labels) if labels is not None else sorted(classes, key=classes.get)
        foreign = [label for label in column_labels if label not in classes]
        if foreign:
            raise UserError(f"{where}: probability column for {foreign[0]!r}, not a class of dataset {dataset!r}")
        if len(set(column_labels)) != len(column_labels):
            raise UserError(f"{where}: two probability columns for one label")
        # the run's classes (its predictions' and its samples' targets) each need a column: a
        # missing one would read as probability 0 and bend log loss and ROC AUC (the build's
        # assert_scored_predictions_cover_their_run_classes would fail after the write)
        run_classes = {classes[label] for label in guesses} | {target_of[key] for key in keys}
        label_of = {number: label for label, number in classes.items()}
        uncovered = sorted(run_classes - {classes[label] for label in column_labels} - {None})
        if uncovered:
            raise UserError(
                f"{where}: no probability column for label {label_of[uncovered[0]]!r}, a class of this run"
                " (predicted, or the target of one of its samples): give one column per class of the run"
            )
        matrix = [[float(p) if p is not None else math.nan for p in row] for row in probabilities]
        if len(matrix) != total:
            raise UserError(f"{where}: {total} predictions but {len(matrix)} rows of probabilities")
        widths = [i for i, row in enumerate(matrix) if len(row) != len(column_labels)]
        if widths:
            raise ds.refusal(f"{where}: a row of probabilities is not one per label", widths, keys, total)
        bad_value = [i for i, row in enumerate(matrix) if any(not (0.0 <= p <= 1.0) for p in row)]
        if bad_value:
            row = matrix[bad_value[0]]
            shown = next(p for p in row if not (0.0 <= p <= 1.0))
            raise ds.refusal(
                f"{where}: probability {shown!r} is not in [0, 1] (negative, above 1, or NaN)", bad_value, keys, total
            )
        unsummed = [i for i, row in enumerate(matrix) if abs(math.fsum(row) - 1.0) > tolerance]
        if unsummed:
            raise ds.refusal(
                f"{where}: probabilities sum to {math.fsum(matrix[unsummed[0]])!r}, not 1 (tolerance {tolerance:g})",
                unsummed,
                keys,
                total,
            )
        score_classes = [classes[label] for label in column_labels]

    table = sql.Identifier(dataset_schema, "predictions")
    # one writer per run at a time: a second load of the same run waits, then sees the first
    conn.execute("select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(%s, 0))", (run_uuid,))
    held = conn.execute(sql.SQL("select count(*) from {} where run_uuid = %s").format(table), (run_uuid,)).fetchone()[0]
    if held and not replace:
        raise UserError(f"run {run_uuid} already has {held} predictions: pass --replace to swap them for these")
    if held:
        conn.execute(sql.SQL("delete from {} where run_uuid = %s").format(table), (run_uuid,))
    # write_batch declares the run's dataset (run_datasets) first, refusing another one
    pred.write_batch(
        conn,
        run_uuid,
        [index_of[key] for key in keys],
        [classes[label] for label in guesses],
        matrix,
        score_classes,
        schema=dataset_schema,
        dataset_id=dataset_id,
    )
    return Loaded(run_uuid, dataset, total, held, matrix is not None)


def sync_for_run(warehouse, config, run_uuid: str) -> None:
    """With MLflow elsewhere (ML_EVAL_MLFLOW_URI), a run not yet in the warehouse's copy is
    brought in by a sync first (the caller holds the database's lock); else nothing happens."""
    from ml_eval import mlflow_sync

    if config.mlflow_uri and not mlflow_sync.run_in_copy(warehouse, config.mlflow_schema, run_uuid):
        mlflow_sync.sync_configured(config, warehouse, report=lambda line: print(line, file=sys.stderr, flush=True))


def _require_run(conn: psycopg.Connection, mlflow_schema: str, run_uuid: str) -> None:
    runs = sql.Identifier(mlflow_schema, "runs")
    if conn.execute("select to_regclass(%s)", (runs.as_string(conn),)).fetchone()[0] is None:
        raise UserError(f"no MLflow store in schema {mlflow_schema}: table {mlflow_schema}.runs does not exist")
    if conn.execute(sql.SQL("select 1 from {} where run_uuid = %s").format(runs), (run_uuid,)).fetchone() is None:
        raise UserError(f"run {run_uuid} is not in MLflow's store ({mlflow_schema}.runs)")


def read_predictions_file(path: str) -> tuple[list, list, list[list[float]] | None, list[str] | None]:
    """sample_key, predicted, and the proba_<label> columns (if any) of a CSV or Parquet file."""
    table = ds.read_table(path, text_columns=("sample_key", "predicted"))
    for column in ("sample_key", "predicted"):
        if column not in table.columns:
            raise UserError(f"{path}: no column {column!r} (columns: {', '.join(table.columns)})")
    proba = [c for c in table.columns if c.startswith(PROBA_PREFIX)]
    matrix = None
    if proba:
        for column in proba:
            odd = [i for i, v in enumerate(table.columns[column]) if v is not None and not isinstance(v, (int, float))]
            if odd:
                raise ds.refusal(f"{path}: {column} is not a number", odd, table.columns["sample_key"], len(table))
        matrix = [
            [math.nan if table.columns[c][i] is None else float(table.columns[c][i]) for c in proba]
            for i in range(len(table))
        ]
    labels = [c[len(PROBA_PREFIX) :] for c in proba] if proba else None
    return table.columns["sample_key"], table.columns["predicted"], matrix, labels
