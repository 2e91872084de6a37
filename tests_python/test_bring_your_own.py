"""Bring your own runs: other datasets through the commands, beside the demo's Wine.

On a clone of the session's demo database: scikit-learn's Iris (string labels) is loaded
with `ml-eval load-dataset` and trained by the README's example script (MLflow runs,
`log_predictions`); the breast cancer data (binary, other column names, Parquet) is loaded
and its predictions come in with `ml-eval load-predictions`. The build publishes metrics
equal to scikit-learn's; a load on the wrong dataset, and every bad input, is refused with
one line and writes nothing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql
from sklearn import metrics as m

from conftest import CONFIG, PROJECT_DIR, clone_database, drop_database, run_ml_eval
from ml_eval import cli
from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError
from ml_eval.producer import predictions as pred

pytestmark = pytest.mark.usefixtures("isolated_environment")

COUNTED = ("datasets", "samples", "targets", "classes", "run_datasets", "predictions", "prediction_scores")


@pytest.fixture(scope="module")
def byo(built: wh.Warehouse, tmp_path_factory):
    """The demo's database cloned, with Iris loaded and trained by the example script."""
    copy = clone_database(built, f"{built.database}_byo")
    work = tmp_path_factory.mktemp("byo")
    iris_csv = work / "iris.csv"
    with iris_csv.open("w") as out:
        subprocess.run([sys.executable, str(PROJECT_DIR / "examples" / "iris_dataset.py")], stdout=out, check=True)
    env = _env(copy)
    loaded = run_ml_eval("load-dataset", "iris", str(iris_csv), env=env)
    expected = "dataset 'iris' (id 2): loaded, 150 samples, 3 classes (setosa=0, versicolor=1, virginica=2)"
    assert expected in loaded.stdout
    trained = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "examples" / "train_iris.py")],
        env={**os.environ, **env},
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    _load_breast_cancer(copy, work)
    run_dbt(["build"], copy)
    yield copy, work
    drop_database(copy)


def _env(database: wh.Warehouse) -> dict[str, str]:
    return {
        **database.env(),
        "MLFLOW_TRACKING_URI": database.sqlalchemy_url(CONFIG.mlflow_schema),
        "ML_EVAL_PROJECT_DIR": str(PROJECT_DIR),
    }


def _counts(database: wh.Warehouse) -> dict[str, int]:
    with database.connect() as conn:
        count = "select count(*) from {}"
        return {
            table: conn.execute(sql.SQL(count).format(sql.Identifier("dataset", table))).fetchone()[0]
            for table in COUNTED
        }


def _refused(database: wh.Warehouse, capsys, *args: str) -> str:
    """Run the command line in this process (as `ml-eval` would): exit 2, one line, nothing written."""
    before = _counts(database)
    os.environ.update(_env(database))
    capsys.readouterr()
    assert cli.main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert _counts(database) == before
    return err.strip().removeprefix("ml-eval: error: ")


def _sklearn_metrics(y_true, y_pred, proba=None, labels=None) -> dict[str, float]:
    values = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "balanced_accuracy": m.balanced_accuracy_score(y_true, y_pred),
        "precision_macro": m.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": m.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_macro": m.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "f1_weighted": m.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "cohen_kappa": m.cohen_kappa_score(y_true, y_pred),
        "mcc": m.matthews_corrcoef(y_true, y_pred),
    }
    if proba is not None:
        values["log_loss"] = m.log_loss(y_true, proba, labels=labels)
        if len(labels) == 2:
            values["roc_auc"] = m.roc_auc_score(y_true, np.asarray(proba)[:, 1])
        else:
            values["roc_auc"] = m.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
    return values


def _published_run(database: wh.Warehouse, run_uuid: str) -> dict[str, float]:
    with database.connect() as conn:
        cur = conn.execute("select * from published.fct_run_evaluation where run_uuid = %s", (run_uuid,))
        row = cur.fetchone()
        assert row is not None, f"run {run_uuid} is not published"
        return dict(zip([c.name for c in cur.description], row, strict=True))


def _source_rows(database: wh.Warehouse, run_uuid: str):
    """The run's predictions with their true class, read from the Dataset Database itself."""
    with database.connect() as conn:
        rows = conn.execute(
            "select p.prediction_id, t.class, p.class from dataset.predictions as p"
            " join dataset.targets as t using (sample_index) where p.run_uuid = %s order by p.prediction_id",
            (run_uuid,),
        ).fetchall()
        scores = conn.execute(
            "select s.prediction_id, s.class, s.probability from dataset.prediction_scores as s"
            " join dataset.predictions as p using (prediction_id) where p.run_uuid = %s",
            (run_uuid,),
        ).fetchall()
    return rows, scores


def _assert_equal_to_sklearn(database: wh.Warehouse, run_uuid: str, labels: list[int]) -> None:
    rows, scores = _source_rows(database, run_uuid)
    y_true = [r[1] for r in rows]
    y_pred = [r[2] for r in rows]
    by_prediction = {(pid, label): p for pid, label, p in scores}
    proba = [[by_prediction[(r[0], label)] for label in labels] for r in rows] if scores else None
    expected = _sklearn_metrics(y_true, y_pred, proba, labels)
    published = _published_run(database, run_uuid)
    for name, value in expected.items():
        assert math.isclose(published[name], value, rel_tol=0, abs_tol=1e-9), (name, published[name], value)


def test_iris_runs_from_a_training_script_are_evaluated_like_scikit_learn(byo):
    database, _ = byo
    with database.connect() as conn:
        runs = conn.execute(
            "select r.run_uuid, r.name from mlflow.runs as r join mlflow.experiments as e using (experiment_id)"
            " where e.name = 'iris' order by r.name"
        ).fetchall()
        classes = conn.execute(
            "select c.label, c.class from dataset.classes as c join dataset.datasets as d using (dataset_id)"
            " where d.name = 'iris' order by c.class"
        ).fetchall()
        names = dict(
            conn.execute(
                "select f.class_label, f.class_name from published.fct_class_metrics as f where f.run_uuid = %s",
                (runs[0][0],),
            ).fetchall()
        )
        wine_runs = conn.execute(
            "select count(*) from published.fct_run_evaluation as f join dataset.run_datasets as r using (run_uuid)"
            " join dataset.datasets as d using (dataset_id) where d.name = 'UCI Wine'"
        ).fetchone()[0]
    assert [name for _, name in runs] == ["decision-tree", "logistic-regression"]
    assert classes == [("setosa", 0), ("versicolor", 1), ("virginica", 2)]
    assert names == {0: "setosa", 1: "versicolor", 2: "virginica"}
    assert wine_runs == 8  # the demo's runs, side by side
    for run_uuid, _ in runs:
        _assert_equal_to_sklearn(database, run_uuid, [0, 1, 2])

    # independently of the Dataset Database: the example script's own split and models
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    iris = load_iris(as_frame=True)
    y = iris.target_names[iris.target]
    x_train, x_test, y_train, y_test = train_test_split(iris.data, y, test_size=0.3, random_state=0, stratify=y)
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    published = _published_run(database, {n: r for r, n in runs}["logistic-regression"])
    assert math.isclose(published["accuracy"], m.accuracy_score(y_test, model.predict(x_test)), abs_tol=1e-9)
    assert math.isclose(published["log_loss"], m.log_loss(y_test, model.predict_proba(x_test)), abs_tol=1e-9)


def _breast_cancer(work) -> tuple[str, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.iloc[:, :5].copy()
    frame.insert(0, "patient", [f"p{row:03d}" for row in range(len(frame))])
    frame["diagnosis"] = data.target.to_numpy()
    path = work / "breast_cancer.parquet"
    frame.to_parquet(path)
    return str(path), frame


def _load_breast_cancer(database: wh.Warehouse, work) -> None:
    """Binary labels 0/1 under other column names, from Parquet; predictions from a CSV file."""
    path, frame = _breast_cancer(work)
    env = _env(database)
    done = run_ml_eval("load-dataset", "breast cancer", path, "--key", "patient", "--target", "diagnosis", env=env)
    assert "loaded, 569 samples, 2 classes (0=0, 1=1)" in done.stdout
    rng = np.random.default_rng(7)
    test = frame.sample(120, random_state=3)
    p1 = np.clip(test["diagnosis"].to_numpy() * 0.7 + rng.uniform(0, 0.3, len(test)), 0, 1)
    p1[:4] = 0.5  # ties
    predictions = pd.DataFrame(
        {"sample_key": test["patient"], "predicted": (p1 >= 0.5).astype(int), "proba_0": 1 - p1, "proba_1": p1}
    )
    csv = work / "bc_predictions.csv"
    predictions.to_csv(csv, index=False)
    url = database.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    experiment = client.create_experiment("breast-cancer")
    run = client.create_run(experiment, run_name="threshold").info.run_id
    client.log_metric(run, "accuracy", float(np.mean((p1 >= 0.5).astype(int) == test["diagnosis"].to_numpy())))
    loaded = run_ml_eval("load-predictions", "--run-id", run, "--dataset", "breast cancer", str(csv), env=env)
    assert f"run {run}: 120 predictions with probabilities on 'breast cancer'" in loaded.stdout
    client.set_terminated(run, "FINISHED")


def test_a_binary_dataset_loaded_from_parquet_is_evaluated_like_scikit_learn(byo, capsys):
    database, work = byo
    with database.connect() as conn:
        run = conn.execute(
            "select r.run_uuid from mlflow.runs as r join mlflow.experiments as e using (experiment_id)"
            " where e.name = 'breast-cancer'"
        ).fetchone()[0]
    _assert_equal_to_sklearn(database, run, [0, 1])
    before = _counts(database)
    os.environ.update(_env(database))
    path = str(work / "breast_cancer.parquet")
    capsys.readouterr()
    assert cli.main(["load-dataset", "breast cancer", path, "--key", "patient", "--target", "diagnosis"]) == 0
    assert "unchanged, 569 samples" in capsys.readouterr().out
    assert _counts(database) == before


def _iris_run(database: wh.Warehouse) -> str:
    with database.connect() as conn:
        return conn.execute(
            "select r.run_uuid from mlflow.runs as r join mlflow.experiments as e using (experiment_id)"
            " where e.name = 'iris' and r.name = 'decision-tree'"
        ).fetchone()[0]


def _write(work, name: str, rows: list[dict]) -> str:
    path = work / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_predictions_on_another_dataset_are_refused_with_one_line(byo, capsys):
    database, work = byo
    run = _iris_run(database)
    path = _write(work, "wine_keys.csv", [{"sample_key": "0", "predicted": "1"}])
    message = _refused(
        database, capsys, "load-predictions", "--run-id", run, "--dataset", "UCI Wine", path, "--replace"
    )
    assert message == (
        f"run {run} is evaluated on dataset 'iris', not 'UCI Wine': a run's predictions are all on one dataset"
    )


def test_rows_of_another_dataset_written_by_other_means_fail_the_build(byo):
    """A writer that bypasses the loader and points an Iris run at Wine's sample indexes."""
    database, _ = byo
    copy = clone_database(database, f"{database.database}_case")
    try:
        run = _iris_run(copy)
        with copy.connect() as conn:
            conn.execute(
                "update dataset.predictions set sample_index = sample_index - 178 where run_uuid = %s and"
                " prediction_id = (select min(prediction_id) from dataset.predictions where run_uuid = %s)",
                (run, run),
            )
        # the counts of the runs, and the test, again (a full refresh counts every run)
        with pytest.raises(UserError) as failure:
            run_dbt(["build", "--full-refresh", "--select", "int_run_predictions_counted+1"], copy)
        assert "assert_predictions_are_of_their_run_dataset" in str(failure.value)
    finally:
        drop_database(copy)


def test_a_run_with_no_dataset_declared_is_excluded_not_failed(byo):
    """A writer that bypasses the loader and never declares the run's dataset (run_datasets):
    the run is left out of the evaluation with its reason, and the build passes."""
    database, _ = byo
    copy = clone_database(database, f"{database.database}_case")
    try:
        run = _iris_run(copy)
        with copy.connect() as conn:
            conn.execute("delete from dataset.run_datasets where run_uuid = %s", (run,))
        run_dbt(["build"], copy)  # the whole build passes
        with copy.connect() as conn:
            reason = conn.execute(
                "select exclusion_reason from intermediate.int_runs_classified where run_uuid = %s", (run,)
            ).fetchone()
            counted = conn.execute(
                "select n_predictions, n_foreign_predictions from intermediate.int_run_predictions_counted"
                " where run_uuid = %s",
                (run,),
            ).fetchone()
        assert reason == ("no dataset declared",)
        assert counted is not None and counted[0] > 0
    finally:
        drop_database(copy)


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([{"sample_key": "0", "predicted": "setosa"}, {"sample_key": "0", "predicted": "setosa"}],
         "sample_key occurs more than once: row 2 (sample_key '0') is the first of 1 of 2 rows"),
        ([{"sample_key": "0", "predicted": "setosa"}, {"sample_key": "x9", "predicted": "setosa"},
          {"sample_key": "x8", "predicted": "setosa"}],
         "sample_key is not a sample of dataset 'iris': row 2 (sample_key 'x9') is the first of 2 of 3 rows"),
        ([{"sample_key": "0", "predicted": "rose"}],
         "predicted label 'rose' is not a class of dataset 'iris' (setosa, versicolor, virginica):"
         " row 1 (sample_key '0') is the first of 1 of 1 rows"),
        ([{"sample_key": "0", "predicted": "setosa", "proba_setosa": 1.2, "proba_versicolor": -0.2,
           "proba_virginica": 0.0}],
         "probability 1.2 is not in [0, 1] (negative, above 1, or NaN):"
         " row 1 (sample_key '0') is the first of 1 of 1 rows"),
        ([{"sample_key": "0", "predicted": "setosa", "proba_setosa": float("nan"), "proba_versicolor": 0.5,
           "proba_virginica": 0.5}],
         "probability nan is not in [0, 1] (negative, above 1, or NaN):"
         " row 1 (sample_key '0') is the first of 1 of 1 rows"),
        ([{"sample_key": "0", "predicted": "setosa", "proba_setosa": 0.5, "proba_versicolor": 0.2,
           "proba_virginica": 0.2},
          {"sample_key": "1", "predicted": "setosa", "proba_setosa": 0.5, "proba_versicolor": 0.2,
           "proba_virginica": 0.2}],
         "probabilities sum to 0.9, not 1 (tolerance 1e-06): row 1 (sample_key '0') is the first of 2 of 2 rows"),
        ([{"sample_key": "0", "predicted": "setosa", "proba_setosa": 1.0, "proba_rose": 0.0}],
         "probability column for 'rose', not a class of dataset 'iris'"),
        ([{"sample_key": "0", "predicted": "versicolor", "proba_setosa": 0.4, "proba_virginica": 0.6}],
         "no probability column for label 'versicolor', a class of this run (predicted, or the target of one of its"
         " samples): give one column per class of the run"),
    ],
    ids=["duplicate-key", "unknown-key", "unknown-label", "negative", "nan", "not-summing", "foreign-column",
         "missing-class-column"],
)  # fmt: skip
def test_bad_predictions_are_refused_with_one_line_and_nothing_written(byo, tmp_path, capsys, rows, expected):
    database, _ = byo
    url = database.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    run = client.create_run(client.get_experiment_by_name("iris").experiment_id, run_name="bad").info.run_id
    path = _write(tmp_path, "bad.csv", rows)
    message = _refused(database, capsys, "load-predictions", "--run-id", run, "--dataset", "iris", path)
    assert message == f"{path}: {expected}"


def test_unknown_run_and_existing_predictions_are_refused(byo, tmp_path, capsys):
    database, _ = byo
    path = _write(tmp_path, "one.csv", [{"sample_key": "0", "predicted": "setosa"}])
    unknown = "0" * 32
    message = _refused(database, capsys, "load-predictions", "--run-id", unknown, "--dataset", "iris", path)
    assert message == f"run {unknown} is not in MLflow's store (mlflow.runs)"
    run = _iris_run(database)
    message = _refused(database, capsys, "load-predictions", "--run-id", run, "--dataset", "iris", path)
    assert message == f"run {run} already has 45 predictions: pass --replace to swap them for these"
    message = _refused(database, capsys, "load-predictions", "--run-id", run, "--dataset", "roses", path)
    assert message.startswith("no dataset named 'roses' is registered (registered: ")


@pytest.mark.parametrize(
    "rows, options, expected",
    [
        ([{"sample_key": "a", "target": "x"}, {"sample_key": "a", "target": "y"}], [],
         "sample_key occurs more than once: row 2 (sample_key 'a') is the first of 1 of 2 rows"),
        ([{"sample_key": "a", "target": "x"}, {"sample_key": "b", "target": ""}], [],
         "the target column 'target' is empty: row 2 (sample_key 'b') is the first of 1 of 2 rows"),
        ([{"id": "a", "target": "x"}], [], "no key column 'sample_key' (columns: id, target)"),
        ([{"sample_key": "a", "target": "x", "f": "inf"}], [],
         "feature 'f' is infinite: row 1 (sample_key 'a') is the first of 1 of 1 rows"),
    ],
    ids=["duplicate-key", "empty-label", "no-key-column", "infinite-feature"],
)  # fmt: skip
def test_bad_datasets_are_refused_with_one_line_and_nothing_written(byo, tmp_path, capsys, rows, options, expected):
    database, _ = byo
    path = _write(tmp_path, "bad_dataset.csv", rows)
    assert _refused(database, capsys, "load-dataset", "bad", path, *options) == f"{path}: {expected}"


def test_a_dataset_with_other_content_is_refused_unless_replaced(byo, tmp_path, capsys):
    database, work = byo
    original = pd.read_csv(work / "iris.csv", dtype={"sample_key": str})
    changed = original.copy()
    changed.loc[0, "target"] = "virginica"
    path = tmp_path / "iris_changed.csv"
    changed.to_csv(path, index=False)
    message = _refused(database, capsys, "load-dataset", "iris", str(path))
    assert message == (
        "dataset 'iris' is registered with other content: pass --replace to replace it (predicted samples must stay)"
    )
    dropped = original.iloc[1:]
    dropped_path = tmp_path / "iris_dropped.csv"
    dropped.to_csv(dropped_path, index=False)
    run = _iris_run(database)
    with database.connect() as conn:
        predicted_key = conn.execute(
            "select s.sample_key from dataset.predictions as p join dataset.samples as s using (sample_index)"
            " where p.run_uuid = %s order by p.prediction_id limit 1",
            (run,),
        ).fetchone()[0]
    dropped = original[original["sample_key"] != predicted_key]
    dropped.to_csv(dropped_path, index=False)
    message = _refused(database, capsys, "load-dataset", "iris", str(dropped_path), "--replace")
    assert message.startswith(f"dataset 'iris': the new content has no sample_key '{predicted_key}', which a run")


def test_write_batch_declares_the_dataset_of_its_samples(byo):
    """The low-level writer (by sample_index) records the samples' dataset as the run's."""
    database, _ = byo
    url = database.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    run = client.create_run(client.get_experiment_by_name("iris").experiment_id, run_name="low-level").info.run_id
    with database.connect() as conn:
        indexes = [r[0] for r in conn.execute("select sample_index from dataset.targets order by 1 limit 3")]
        with conn.transaction():
            pred.write_batch(conn, run, indexes, [1, 1, 1], None, [1, 2, 3], schema=CONFIG.dataset_schema)
        declared = conn.execute(
            "select d.name from dataset.run_datasets join dataset.datasets as d using (dataset_id) where run_uuid = %s",
            (run,),
        ).fetchone()
        conn.rollback()
    assert declared == ("UCI Wine",)


def _orphans(database: wh.Warehouse) -> int:
    """Published prediction rows whose prediction is gone from the Dataset Database."""
    with database.connect() as conn:
        return conn.execute(
            "select count(*) from published.fct_predictions as f"
            " where not exists (select from dataset.predictions as p where p.prediction_id = f.prediction_id)"
        ).fetchone()[0]


def _log_what_the_rows_say(client: MlflowClient, database: wh.Warehouse, run_uuid: str) -> None:
    """A corrected run's script logs its corrected metrics too: what scikit-learn says of its rows."""
    rows, _ = _source_rows(database, run_uuid)
    y_true, y_pred = [r[1] for r in rows], [r[2] for r in rows]
    client.log_metric(run_uuid, "accuracy", m.accuracy_score(y_true, y_pred))
    client.log_metric(run_uuid, "f1_macro", m.f1_score(y_true, y_pred, average="macro"))


def test_a_corrected_reload_is_re_evaluated_and_republished(byo, tmp_path, capsys):
    """`load-predictions --replace` swaps a run's predictions, and `load-dataset --replace`
    corrects a label: the next build re-evaluates the runs concerned, and the published copies
    follow, with no row left of the predictions that are gone."""
    database, work = byo
    copy = clone_database(database, f"{database.database}_case")
    try:
        run = _iris_run(copy)
        with copy.connect() as conn:
            keys = [
                r[0]
                for r in conn.execute(
                    "select s.sample_key from dataset.predictions as p join dataset.samples as s using (sample_index)"
                    " where p.run_uuid = %s order by p.prediction_index",
                    (run,),
                )
            ]
            before = _published_run(copy, run)
        iris = pd.read_csv(work / "iris.csv", dtype={"sample_key": str}).set_index("sample_key")
        corrected = _write(tmp_path, "fixed.csv", [{"sample_key": k, "predicted": iris.loc[k, "target"]} for k in keys])
        # and a model version MLflow 3 deleted (it keeps the row, stage Deleted_Internal, run_id redacted)
        url = copy.sqlalchemy_url("mlflow")
        client = MlflowClient(url, url)
        client.create_registered_model("iris-withdrawn")
        version = client.create_model_version("iris-withdrawn", source=f"runs:/{run}/model", run_id=run).version
        client.delete_model_version("iris-withdrawn", version)
        os.environ.update(_env(copy))
        assert cli.main(["load-predictions", "--run-id", run, "--dataset", "iris", corrected, "--replace"]) == 0
        assert f"replacing {len(keys)}" in capsys.readouterr().out
        _log_what_the_rows_say(client, copy, run)
        run_dbt(["build"], copy)
        after = _published_run(copy, run)
        assert before["accuracy"] < 1 and after["accuracy"] == 1.0
        with copy.connect() as conn:
            withdrawn = conn.execute(
                "select count(*) from published.dim_model_versions where registered_model_name = 'iris-withdrawn'"
            ).fetchone()[0]
        assert withdrawn == 0
        _assert_equal_to_sklearn(copy, run, [0, 1, 2])
        assert _orphans(copy) == 0

        # one label corrected in the dataset: every Iris run is scored against it
        changed = iris.copy()
        flipped = keys[0]
        changed.loc[flipped, "target"] = "virginica" if changed.loc[flipped, "target"] != "virginica" else "setosa"
        path = tmp_path / "iris_fixed.csv"
        changed.reset_index().to_csv(path, index=False)
        assert cli.main(["load-dataset", "iris", str(path), "--replace"]) == 0
        assert "replaced, 150 samples" in capsys.readouterr().out
        with copy.connect() as conn:
            iris_runs = [
                r[0]
                for r in conn.execute(
                    "select run_uuid from dataset.run_datasets join dataset.datasets using (dataset_id)"
                    " where name = 'iris'"
                )
            ]
        for iris_run in iris_runs:
            _log_what_the_rows_say(client, copy, iris_run)
        run_dbt(["build"], copy)
        with copy.connect() as conn:
            disagreeing = conn.execute(
                "select count(*) from published.fct_predictions as f join dataset.targets as t using (sample_index)"
                " where f.actual_class <> t.class"
            ).fetchone()[0]
        assert disagreeing == 0
        for iris_run in iris_runs:
            _assert_equal_to_sklearn(copy, iris_run, [0, 1, 2])
        assert _published_run(copy, run)["accuracy"] < 1
        assert _orphans(copy) == 0
    finally:
        drop_database(copy)
