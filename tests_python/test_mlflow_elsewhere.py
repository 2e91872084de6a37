"""MLflow elsewhere, end to end: runs MLflow 3.17 writes to MariaDB and to SQLite, evaluated.

Real MLflow 3.17 writes real models' runs into its own store, a fresh MariaDB database
(127.0.0.1:3306, root, no password: the service every machine here and CI run) or a SQLite
file, never into the warehouse:

- SQLite: the README's example training script (`examples/train_iris.py`: two classifiers on
  Iris, MLFLOW_TRACKING_URI=sqlite:///…) with ML_EVAL_MLFLOW_URI naming the same file, so its
  `log_predictions` syncs each run into the warehouse's copy first; then `ml-eval build`
  (which syncs first).
- MariaDB: the example script's Iris runs into a MariaDB store the same way, then
  `ml-eval demo` with ML_EVAL_MLFLOW_URI=mysql+pymysql://… (item 5 of issue 16): `ml-eval
  train` writes its eight runs to MariaDB and syncs them, and the demo's build reads the copy.

Every published metric of every run equals scikit-learn's on the same rows to 1e-9, and
every `logged_*` value of `fct_run_evaluation` is the source store's own value, bit for bit
(`float.hex`), read through the source's own driver (pymysql, sqlite3). `ml-eval train`
without ML_EVAL_MLFLOW_URI refuses to write into the synced copy. An `ml-eval build` killed
while its sync reads a run's 130,000 metric rows leaves the copy and the published marts
exactly as they were.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest

from conftest import (
    CONFIG,
    PROJECT_DIR,
    drop_database,
    kill_midway_through_sync,
    log_long_history,
    migrated_file_store,
    run_ml_eval,
)
from ml_eval import mlflow_sync
from ml_eval import warehouse as wh
from test_bring_your_own import _sklearn_metrics

PREFIX = os.environ.get("ML_EVAL_TEST_DATABASE_PREFIX") or "ml_eval_pytest"
MARIADB = {
    "host": os.environ.get("ML_EVAL_TEST_MARIADB_HOST") or "127.0.0.1",
    "port": int(os.environ.get("ML_EVAL_TEST_MARIADB_PORT") or 3306),
    "user": "root",
}
SCHEMA = CONFIG.mlflow_schema


def _fresh_warehouse(name: str) -> wh.Warehouse:
    database = wh.resolve(CONFIG).with_database(f"{PREFIX}_{name}_{os.getpid()}")
    wh.ensure_database(database, fresh=True)
    return database


def _env(database: wh.Warehouse, uri: str, work: Path) -> dict[str, str]:
    return {
        **database.env(),
        "ML_EVAL_MLFLOW_URI": uri,
        "MLFLOW_TRACKING_URI": uri,
        "ML_EVAL_PROJECT_DIR": str(PROJECT_DIR),
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def _iris(database: wh.Warehouse, env: dict[str, str], work: Path) -> subprocess.CompletedProcess:
    """Load Iris, then run the README's example training script against MLflow's own store."""
    iris_csv = work / "iris.csv"
    with iris_csv.open("w") as out:
        subprocess.run([sys.executable, str(PROJECT_DIR / "examples" / "iris_dataset.py")], stdout=out, check=True)
    run_ml_eval("load-dataset", "iris", str(iris_csv), env=env)
    trained = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "examples" / "train_iris.py")],
        env={**os.environ, **env},
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    return trained


def _published(database: wh.Warehouse) -> dict[str, dict]:
    with database.connect() as conn:
        cur = conn.execute("select * from published.fct_run_evaluation")
        names = [c.name for c in cur.description]
        return {row[names.index("run_uuid")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _assert_like_sklearn(database: wh.Warehouse, run_uuid: str, published: dict) -> None:
    """The run's published metrics against scikit-learn's, on the rows of the Dataset Database."""
    with database.connect() as conn:
        rows = conn.execute(
            "select p.prediction_id, t.class, p.class from dataset.predictions as p"
            " join dataset.targets as t using (sample_index) where p.run_uuid = %s order by p.prediction_id",
            (run_uuid,),
        ).fetchall()
        labels = [
            label
            for (label,) in conn.execute(
                "select c.class from dataset.classes as c join dataset.run_datasets as r using (dataset_id)"
                " where r.run_uuid = %s order by c.class",
                (run_uuid,),
            ).fetchall()
        ]
        scores = conn.execute(
            "select s.prediction_id, s.class, s.probability from dataset.prediction_scores as s"
            " join dataset.predictions as p using (prediction_id) where p.run_uuid = %s",
            (run_uuid,),
        ).fetchall()
    assert rows, run_uuid
    by_prediction = {(pid, label): p for pid, label, p in scores}
    proba = [[by_prediction[(r[0], label)] for label in labels] for r in rows]
    expected = _sklearn_metrics([r[1] for r in rows], [r[2] for r in rows], proba, labels)
    for name, value in expected.items():
        assert math.isclose(published[name], value, rel_tol=0, abs_tol=1e-9), (run_uuid, name, published[name], value)


def _assert_logged_bit_for_bit(published: dict, source_latest: dict[tuple[str, str], tuple[float, bool]]) -> int:
    """Every logged_* value is the source's latest value of the key the mart read for it; returns
    how many were compared."""
    run_uuid = published["run_uuid"]
    keys = published["compared_mlflow_keys"] or {}
    logged = {name.removeprefix("logged_"): v for name, v in published.items() if name.startswith("logged_")}
    assert {name for name, value in logged.items() if value is not None} == set(keys), (run_uuid, keys)
    for name, key in keys.items():
        value, is_nan = source_latest[(run_uuid, key)]
        assert not is_nan
        assert float(logged[name]).hex() == float(value).hex(), (run_uuid, name, key, logged[name], value)
    return len(keys)


def _source_latest(connect: Callable[[], object]) -> dict[tuple[str, str], tuple[float, bool]]:
    conn = connect()
    try:
        cursor = conn.cursor()
        cursor.execute("select run_uuid, `key`, value, is_nan from latest_metrics")
        return {(run, key): (value, bool(is_nan)) for run, key, value, is_nan in cursor.fetchall()}
    finally:
        conn.close()


def _source_runs(connect: Callable[[], object]) -> dict[str, str]:
    conn = connect()
    try:
        cursor = conn.cursor()
        cursor.execute("select run_uuid, name from runs")
        return dict(cursor.fetchall())
    finally:
        conn.close()


@pytest.fixture
def mariadb_store() -> Iterator[tuple[str, Callable[[], object]]]:
    try:
        admin = pymysql.connect(**MARIADB, connect_timeout=5)
    except pymysql.Error as exc:
        pytest.fail(f"MariaDB does not answer at {MARIADB['host']}:{MARIADB['port']}: {exc}")
    name = f"{PREFIX}_elsewhere_{os.getpid()}"
    admin.cursor().execute(f"drop database if exists `{name}`")
    admin.cursor().execute(f"create database `{name}` character set utf8mb4")
    uri = f"mysql+pymysql://root@{MARIADB['host']}:{MARIADB['port']}/{name}"
    try:
        yield uri, lambda: pymysql.connect(**MARIADB, database=name, charset="utf8mb4")
    finally:
        admin.cursor().execute(f"drop database if exists `{name}`")
        admin.close()


def test_runs_mlflow_writes_to_sqlite_are_evaluated_exactly(tmp_path: Path):
    database = _fresh_warehouse("elsewhere_sqlite")
    path = tmp_path / "mlflow.db"
    uri = f"sqlite:///{path}"
    env = _env(database, uri, tmp_path)
    try:
        trained = _iris(database, env, tmp_path)
        # each log_predictions found its run missing from the copy and synced it first
        assert trained.stderr.count(f"synced {uri} (revision dc11669786a5, MLflow 3.17)") == 2, trained.stderr
        built = run_ml_eval("build", "--no-docs", env=env)
        assert f"synced {uri} " in built.stdout
        assert mlflow_sync.copied_from(database, SCHEMA) == f"sqlite:///{path.resolve()}"

        published = _published(database)
        connect = lambda: sqlite3.connect(path)  # noqa: E731
        runs = _source_runs(connect)
        assert sorted(runs.values()) == ["decision-tree", "logistic-regression"]
        assert set(published) == set(runs)
        latest = _source_latest(connect)
        for run_uuid in runs:
            _assert_like_sklearn(database, run_uuid, published[run_uuid])
            # the script logs accuracy and f1_macro (scikit-learn's, computed in the script)
            assert _assert_logged_bit_for_bit(published[run_uuid], latest) == 2
            assert published[run_uuid]["mlflow_agreement"] == "agrees", published[run_uuid]
        _assert_mlflow_ui_shows(database, published, env, tmp_path)
        _kill_a_build_midway_through_its_sync(database, uri, env)
    finally:
        drop_database(database)


def test_a_file_store_is_evaluated_through_migrate_filestore(tmp_path: Path):
    """The file store's route (README "The file store"): MLflow 3.17 tracks a real Iris run in
    a file store, MLflow's own migrate-filestore makes it a SQLite file, and the project takes
    it from there: load-predictions (which syncs first), build. The experiment id, too big for
    MLflow's PostgreSQL integer, is published unchanged."""
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    iris = load_iris(as_frame=True)
    labels = iris.target_names[iris.target]
    keys = [str(row) for row in range(len(iris.data))]  # iris_dataset.py's sample_key column
    x_train, x_test, y_train, y_test, _, test_keys = train_test_split(
        iris.data, labels, keys, test_size=0.3, random_state=1, stratify=labels
    )
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    predicted, proba = model.predict(x_test), model.predict_proba(x_test)
    logged = {}

    def log_runs(uri: str) -> None:
        client = MlflowClient(uri, uri)  # the registry too: its default is ./mlflow.db
        experiment_id = client.create_experiment("iris-files")
        run = client.create_run(experiment_id, run_name="logistic-regression")
        client.log_metric(run.info.run_id, "accuracy", accuracy_score(y_test, predicted))
        client.log_metric(run.info.run_id, "f1_macro", f1_score(y_test, predicted, average="macro"))
        client.set_terminated(run.info.run_id)
        logged.update(run_id=run.info.run_id, experiment_id=int(experiment_id))

    migrated = migrated_file_store(tmp_path, log_runs)
    assert logged["experiment_id"] >= 2**31, logged
    database = _fresh_warehouse("elsewhere_files")
    uri = f"sqlite:///{migrated}"
    env = _env(database, uri, tmp_path)
    try:
        iris_csv = tmp_path / "iris.csv"
        with iris_csv.open("w") as out:
            subprocess.run([sys.executable, str(PROJECT_DIR / "examples" / "iris_dataset.py")], stdout=out, check=True)
        run_ml_eval("load-dataset", "iris", str(iris_csv), env=env)
        predictions_csv = tmp_path / "predictions.csv"
        with predictions_csv.open("w") as out:
            out.write(",".join(["sample_key", "predicted", *(f"proba_{label}" for label in model.classes_)]) + "\n")
            for key, label, row in zip(test_keys, predicted, proba, strict=True):
                out.write(",".join([key, label, *(repr(float(p)) for p in row)]) + "\n")
        loaded = run_ml_eval(
            "load-predictions", "--run-id", logged["run_id"], "--dataset", "iris", str(predictions_csv), env=env
        )
        assert "experiment id columns become bigint" in loaded.stderr, loaded.stderr
        run_ml_eval("build", "--no-docs", env=env)

        published = _published(database)
        assert set(published) == {logged["run_id"]}
        _assert_like_sklearn(database, logged["run_id"], published[logged["run_id"]])
        latest = _source_latest(lambda: sqlite3.connect(migrated))
        assert _assert_logged_bit_for_bit(published[logged["run_id"]], latest) == 2
        with database.connect() as conn:
            assert conn.execute(
                "select experiment_id from published.dim_runs where run_uuid = %s", (logged["run_id"],)
            ).fetchone() == (logged["experiment_id"],)
    finally:
        drop_database(database)


def _digests(database: wh.Warehouse, schemas: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    """Every table of the schemas: its row count and an md5 of its rows' text, sorted."""
    with database.connect() as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
            (list(schemas),),
        ).fetchall()
        return {
            f"{schema}.{table}": conn.execute(
                f"select count(*), md5(coalesce(string_agg(t::text, E'\\n' order by t::text), ''))"
                f' from "{schema}"."{table}" as t'
            ).fetchone()
            for schema, table in tables
        }


def _kill_a_build_midway_through_its_sync(database: wh.Warehouse, uri: str, env: dict[str, str]) -> None:
    """A run with 130,000 metric rows in MLflow's store, then `ml-eval build` (which syncs first),
    SIGKILLed once its sync has read 100,000 of them: the copy and the published marts stay."""
    before = _digests(database, ("published", SCHEMA))
    assert sum(rows for name, (rows, _) in before.items() if name.startswith("published.")) > 0
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.get_experiment_by_name("iris").experiment_id, run_name="long").info.run_id
    log_long_history(client, run_id)
    client.set_terminated(run_id)
    kill_midway_through_sync("build", "--no-docs", env=env)
    assert _digests(database, ("published", SCHEMA)) == before


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _assert_mlflow_ui_shows(database: wh.Warehouse, published: dict[str, dict], env: dict, work: Path) -> None:
    """`ml-eval mlflow-ui` (make mlflow-ui): MLflow's own UI over the copy, in headless Chromium,
    shows a run the marts hold; the UI's store is read-only, so a write through its API fails."""
    from support import browser

    run_uuid, row = sorted(published.items())[0]
    with database.connect() as conn:
        experiment_id = conn.execute(f'select experiment_id from "{SCHEMA}".runs where run_uuid = %s', (run_uuid,))
        experiment_id = experiment_id.fetchone()[0]
    port = _free_port()
    log = (work / "mlflow_ui.log").open("w")
    ui = subprocess.Popen(
        [sys.executable, "-m", "ml_eval", "mlflow-ui", "--port", str(port)],
        cwd=PROJECT_DIR, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # MLflow's server starts slowly on a loaded machine
        while True:
            assert ui.poll() is None, (work / "mlflow_ui.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=10) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (work / "mlflow_ui.log").read_text()[-3000:]
            time.sleep(2)
        with browser.open_page(1400, 900) as page:
            page.goto(f"{base}/#/experiments/{experiment_id}/runs/{run_uuid}", timeout=300)
            page.wait_for(
                f"document.body && document.body.innerText.includes({json.dumps(run_uuid)})"
                f" && document.body.innerText.includes({json.dumps(row['run_name'])})",
                timeout=300,
            )
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/experiments/create",
            data=json.dumps({"name": "written-through-the-ui"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=120)
        assert "read-only transaction" in refused.value.read().decode()
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=30)
        log.close()


def test_demo_with_mlflow_on_mariadb(mariadb_store, tmp_path: Path):
    """A training script's runs to MariaDB (its log_predictions syncs them), then `ml-eval demo`
    with ML_EVAL_MLFLOW_URI on MariaDB: train writes its runs there and syncs, and the demo's
    build reads the copy: one build evaluates both."""
    uri, connect = mariadb_store
    database = _fresh_warehouse("elsewhere_mariadb")
    env = _env(database, uri, tmp_path)
    try:
        trained = _iris(database, env, tmp_path)
        assert trained.stderr.count(f"synced {uri} ") == 2, trained.stderr
        demo = run_ml_eval("demo", "--no-docs", env=env)
        (line,) = [line for line in demo.stdout.splitlines() if line.startswith(f"synced {uri} ")]
        # after training: 8 new runs, and the end (status, end_time) of the script's last run
        assert ", 1 tables changed" not in line and " ~1 -0 rows" in line, line
        assert mlflow_sync.copied_from(database, SCHEMA) == uri

        published = _published(database)
        runs = _source_runs(connect)
        assert len(runs) == 10 and set(published) == set(runs)
        latest = _source_latest(connect)
        compared = 0
        for run_uuid in runs:
            _assert_like_sklearn(database, run_uuid, published[run_uuid])
            compared += _assert_logged_bit_for_bit(published[run_uuid], latest)
        assert compared == 8 * 8 + 2 * 2  # train logs eight of the compared metrics per run, the script two

        # MLflow must not write into the copy: train without ML_EVAL_MLFLOW_URI refuses, in one line
        without = {key: value for key, value in env.items() if key != "ML_EVAL_MLFLOW_URI"}
        saved = os.environ.pop("ML_EVAL_MLFLOW_URI", None)
        try:
            refused = run_ml_eval("train", env=without, check=False)
        finally:
            if saved is not None:
                os.environ["ML_EVAL_MLFLOW_URI"] = saved
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"ml-eval: error: schema {SCHEMA} of database {database.database} is sync-mlflow's copy of {uri}:"
            " `ml-eval train` would write MLflow runs into the copy, which the next sync deletes; set"
            f" ML_EVAL_MLFLOW_URI={uri} so MLflow writes there and the copy follows, or use another schema"
            " (ML_EVAL_MLFLOW_SCHEMA)"
        ]
        assert _source_runs(connect) == runs
    finally:
        drop_database(database)
