"""Made-up runs for the edge cases of the metric tests (test_metrics.py, test_evaluation_depth.py),
and a run's rows read straight from the source tables, never from the marts."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def case_rows(name: str, sample_index: np.ndarray, truth: np.ndarray, rng: np.random.Generator):
    """(sample indexes, predicted labels, probability rows, scored classes) of a made-up run."""
    classes = [1, 2, 3]

    def peaked(labels, strength=6.0):
        raw = rng.dirichlet(np.ones(3), size=len(labels))
        for row, label in zip(raw, labels, strict=True):
            row[label - 1] += strength * rng.random()
        return raw / raw.sum(axis=1, keepdims=True)

    if name == "noisy":
        proba = peaked(truth, 1.5)
        return sample_index, proba.argmax(axis=1) + 1, proba, classes
    if name == "never_predicts_class_3":
        proba = peaked(np.where(truth == 3, 2, truth), 3.0)
        proba[:, 2] = 0.0
        proba /= proba.sum(axis=1, keepdims=True)
        return sample_index, proba.argmax(axis=1) + 1, proba, classes
    if name == "perfect":
        proba = np.eye(3)[truth - 1] * 0.9 + 0.1 / 3
        return sample_index, truth, proba, classes
    if name == "all_wrong":
        wrong = truth % 3 + 1
        proba = np.eye(3)[wrong - 1]  # probability 0 on the true class: log loss hits eps
        return sample_index, wrong, proba, classes
    if name == "one_class_targets":
        keep = truth == 2
        proba = peaked(truth[keep], 1.0)
        return sample_index[keep], proba.argmax(axis=1) + 1, proba, classes
    if name == "single_prediction":
        return sample_index[:1], np.array([2]), np.array([[0.2, 0.5, 0.3]]), classes
    if name == "tied_scores":
        proba = np.round(peaked(truth, 1.0), 1)
        proba[:, 2] = 1.0 - proba[:, 0] - proba[:, 1]
        proba = np.clip(proba, 0.0, 1.0)
        proba /= proba.sum(axis=1, keepdims=True)
        return sample_index, proba.argmax(axis=1) + 1, proba, classes
    if name == "binary":
        keep = truth < 3
        p2 = np.clip(0.5 + 0.35 * (truth[keep] - 1.5) + rng.normal(0, 0.3, keep.sum()), 0, 1)
        proba = np.column_stack([1 - p2, p2])
        return sample_index[keep], np.where(p2 >= 0.5, 2, 1), proba, [1, 2]
    raise ValueError(name)


CASES = [
    "noisy", "never_predicts_class_3", "perfect", "all_wrong", "one_class_targets",
    "single_prediction", "tied_scores", "binary",
]  # fmt: skip


def source_rows(conn, run_uuid: str):
    """y_true, y_pred, the probability matrix and its classes, straight from the source tables."""
    rows = conn.execute(
        """
        select p.prediction_id, t.class, p.class
        from dataset.predictions as p
        join dataset.targets as t on t.sample_index = p.sample_index
        where p.run_uuid = %s
        order by p.prediction_id
        """,
        (run_uuid,),
    ).fetchall()
    scores = conn.execute(
        """
        select s.prediction_id, s.class, s.probability
        from dataset.prediction_scores as s
        join dataset.predictions as p using (prediction_id)
        where p.run_uuid = %s
        """,
        (run_uuid,),
    ).fetchall()
    classes = sorted({c for _, c, _ in scores})
    position = {row[0]: i for i, row in enumerate(rows)}
    proba = np.zeros((len(rows), len(classes)))
    for prediction_id, label, probability in scores:
        proba[position[prediction_id], classes.index(label)] = probability
    y_true = np.array([r[1] for r in rows])
    y_pred = np.array([r[2] for r in rows])
    return y_true, y_pred, proba, classes


def evaluated_cases(
    warehouse, suffix: str, cases: list[str], *, experiment: str, seed: int,
    rows: Callable | None = None, logged: Callable | None = None,
) -> Iterator:  # fmt: skip
    """A module's database (`<session database>_<suffix>`) with the seeds, one real MLflow run
    per case (its predictions from `rows`, default case_rows; `logged(client, run_id, case,
    y_true, predicted, proba, classes)` may log metrics to it), and the marts built with
    --warn-error. Yields (database, {run_uuid: case}); drops the database afterwards."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from conftest import CONFIG, register_wine
    from ml_eval import warehouse as wh
    from ml_eval.dbt import run_dbt
    from ml_eval.producer import predictions as pred

    rows = rows or case_rows
    database = warehouse.with_database(f"{warehouse.database}_{suffix}")
    wh.ensure_database(database, fresh=True)
    run_dbt(["seed"], database)
    register_wine(database)
    with database.connect(autocommit=True) as conn:
        conn.execute("create schema if not exists mlflow")
        targets = conn.execute("select sample_index, class from dataset.targets order by sample_index").fetchall()
    sample_index = np.array([r[0] for r in targets])
    truth = np.array([r[1] for r in targets])
    mlflow.set_tracking_uri(database.sqlalchemy_url("mlflow"))
    client = MlflowClient(database.sqlalchemy_url("mlflow"), database.sqlalchemy_url("mlflow"))
    experiment_id = client.create_experiment(experiment)
    rng = np.random.default_rng(seed)
    run_cases = {}
    with database.connect() as conn:
        pred.ensure_tables(conn, CONFIG.dataset_schema)
        for case in cases:
            run = client.create_run(experiment_id, run_name=case)
            indexes, predicted, proba, classes = rows(case, sample_index, truth, rng)
            with conn.transaction():
                pred.write_batch(
                    conn, run.info.run_id, indexes, predicted, proba, classes, schema=CONFIG.dataset_schema
                )
            if logged is not None:
                y_true = truth[np.searchsorted(sample_index, indexes)]
                logged(client, run.info.run_id, case, y_true, predicted, proba, classes)
            client.set_terminated(run.info.run_id, "FINISHED")
            run_cases[run.info.run_id] = case
    run_dbt(["build", "--warn-error"], database)
    yield database, run_cases
    with database.connect("postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{database.database}" with (force)')
