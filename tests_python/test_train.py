"""`ml-eval train`: real models tracked in a real MLflow on PostgreSQL, predictions in the warehouse.

Everything is checked from the database with SQL and scikit-learn, independently of the
producer's code: MLflow's tables, the runs and their tags, the registered versions and the
champion alias, the stored predictions and probabilities. Failures use estimators defined
here (real scikit-learn-compatible classes) and broken tables in databases of their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import mlflow.store.db_migrations
import numpy as np
import pytest
import yaml
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split

from conftest import CONFIG, PROJECT_DIR, clone_database, drop_database, run_ml_eval
from ml_eval import warehouse as wh
from ml_eval.errors import UserError
from ml_eval.producer.candidates import Candidate, default_candidates
from ml_eval.producer.tracking import git_commit
from ml_eval.producer.train import Settings, train
from ml_eval.producer.wine import FEATURES, seed_rows

EXPERIMENT = "wine-classification"
MODEL = "wine-classifier"
N_CANDIDATES = len(default_candidates())
N_TEST = 54  # 30% of 178, stratified
EVALUATOR_METRICS = {
    "example_count", "accuracy_score", "precision_score", "recall_score", "f1_score", "log_loss", "roc_auc",
}  # fmt: skip


def rows(database: wh.Warehouse, query: str, params: tuple = ()) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(query, params).fetchall()


def finished_runs(database: wh.Warehouse) -> list[tuple[str, str, str]]:
    """(run_uuid, run name, model_family) of the experiment's FINISHED runs, oldest first."""
    return rows(
        database,
        """
        select r.run_uuid, r.name, t.value
        from mlflow.runs as r
        join mlflow.experiments as e using (experiment_id)
        join mlflow.tags as t on t.run_uuid = r.run_uuid and t.key = 'model_family'
        where e.name = %s and r.status = 'FINISHED'
        order by r.start_time, r.run_uuid
        """,
        (EXPERIMENT,),
    )


def stored_run(database: wh.Warehouse, run_uuid: str):
    """y_true, y_pred and the probability matrix (classes 1, 2, 3) of a run, from the tables."""
    predicted = rows(
        database,
        "select p.prediction_id, t.class, p.class from dataset.predictions as p"
        " join dataset.targets as t using (sample_index) where p.run_uuid = %s order by p.prediction_index",
        (run_uuid,),
    )
    position = {prediction_id: i for i, (prediction_id, _, _) in enumerate(predicted)}
    proba = np.zeros((len(predicted), 3))
    for prediction_id, label, probability in rows(
        database,
        "select s.prediction_id, s.class, s.probability from dataset.prediction_scores as s"
        " join dataset.predictions as p using (prediction_id) where p.run_uuid = %s",
        (run_uuid,),
    ):
        proba[position[prediction_id], label - 1] = probability
    return np.array([r[1] for r in predicted]), np.array([r[2] for r in predicted]), proba


# --- the main job's runs (session database, built by `ml-eval demo`) --------------------


def test_mlflow_created_its_tables_at_the_head_revision(built):
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(os.path.dirname(mlflow.store.db_migrations.__file__)).get_current_head()
    assert rows(built, "select version_num from mlflow.alembic_version") == [(head,)]
    tables = {
        r[0] for r in rows(built, "select table_name from information_schema.tables where table_schema = 'mlflow'")
    }
    assert {"experiments", "runs", "metrics", "params", "tags", "datasets", "inputs", "registered_models",
            "model_versions", "registered_model_aliases", "logged_models"} <= tables  # fmt: skip
    location = rows(built, "select artifact_location from mlflow.experiments where name = %s", (EXPERIMENT,))
    # the artifacts are kept per database the demo ran in (`make test`: ml_eval_ci, copied)
    ran_in = os.environ.get("ML_EVAL_TEST_BUILT_FROM") or built.database
    assert location == [((PROJECT_DIR / ".local" / "mlartifacts" / ran_in / EXPERIMENT).as_uri(),)]


def test_runs_finished_across_model_families_with_metrics_tags_and_inputs(built):
    runs = finished_runs(built)
    assert len(runs) >= 6
    assert {family for _, _, family in runs} >= {"baseline", "linear", "tree_ensemble", "svm", "knn"}
    commit = git_commit(PROJECT_DIR)
    for run_uuid, name, _ in runs:
        keys = {r[0] for r in rows(built, "select key from mlflow.latest_metrics where run_uuid = %s", (run_uuid,))}
        assert keys >= EVALUATOR_METRICS, name
        tags = dict(rows(built, "select key, value from mlflow.tags where run_uuid = %s", (run_uuid,)))
        assert tags.get("git_commit") == commit, name
        params = dict(rows(built, "select key, value from mlflow.params where run_uuid = %s", (run_uuid,)))
        assert (params["test_size"], params["split_random_state"], params["n_test"]) == ("0.3", "42", str(N_TEST))
        contexts = rows(
            built,
            "select d.name, it.value from mlflow.inputs as i"
            " join mlflow.datasets as d on d.dataset_uuid = i.source_id"
            " join mlflow.input_tags as it on it.input_uuid = i.input_uuid and it.name = 'mlflow.data.context'"
            " where i.destination_type = 'RUN' and i.destination_id = %s order by 2",
            (run_uuid,),
        )
        assert contexts == [("dataset.samples:test", "evaluation"), ("dataset.samples:train", "training")], name


def test_gradient_boosting_logs_a_stepped_history(built):
    for run_uuid, name, family in finished_runs(built):
        if family != "tree_ensemble":
            continue
        n_estimators = int(
            rows(built, "select value from mlflow.params where run_uuid = %s and key = 'n_estimators'", (run_uuid,))[0][
                0
            ]
        )
        history = rows(
            built,
            "select step, value from mlflow.metrics where run_uuid = %s and key = 'staged_log_loss' order by step",
            (run_uuid,),
        )
        assert [step for step, _ in history] == list(range(1, n_estimators + 1)), name
        final = rows(built, "select value from mlflow.metrics where run_uuid = %s and key = 'log_loss'", (run_uuid,))
        assert history[-1][1] == pytest.approx(final[0][0], abs=1e-12)


def test_one_prediction_per_test_sample_per_run(built):
    targets = rows(built, "select sample_index, class from dataset.targets order by sample_index")
    index, labels = np.array([t[0] for t in targets]), np.array([t[1] for t in targets])
    _, expected_test = train_test_split(index, test_size=0.3, random_state=42, stratify=labels)
    for run_uuid, name, _ in finished_runs(built):
        batch = rows(
            built,
            "select prediction_index, sample_index from dataset.predictions where run_uuid = %s order by 1",
            (run_uuid,),
        )
        assert len(batch) == N_TEST, name
        assert [position for position, _ in batch] == list(range(N_TEST))
        assert sorted(sample for _, sample in batch) == sorted(expected_test.tolist())


def test_probabilities_cover_every_class_and_sum_to_one(built):
    sums = rows(
        built,
        "select p.run_uuid, p.prediction_id, count(*), sum(s.probability), min(s.probability), max(s.probability),"
        " array_agg(s.class order by s.class)"
        " from dataset.predictions as p join dataset.prediction_scores as s using (prediction_id)"
        " group by 1, 2",
    )
    assert len(sums) == N_TEST * len(finished_runs(built))
    for _, _, count, total, low, high, classes in sums:
        assert count == 3 and classes == [1, 2, 3]
        assert abs(total - 1.0) <= 1e-9 and low >= 0.0 and high <= 1.0


def test_logged_metrics_equal_scikit_learn_on_the_stored_predictions(built):
    for run_uuid, name, _ in finished_runs(built):
        y_true, y_pred, proba = stored_run(built, run_uuid)
        expected = {
            "example_count": len(y_true),
            "accuracy_score": skm.accuracy_score(y_true, y_pred),
            "precision_score": skm.precision_score(y_true, y_pred, average="weighted", zero_division=0),
            "recall_score": skm.recall_score(y_true, y_pred, average="weighted", zero_division=0),
            "f1_score": skm.f1_score(y_true, y_pred, average="weighted", zero_division=0),
            "f1_score_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
            "log_loss": skm.log_loss(y_true, proba, labels=[1, 2, 3]),
            "roc_auc": skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=[1, 2, 3]),
        }
        logged = dict(
            rows(built, "select key, value from mlflow.latest_metrics where run_uuid = %s and step = 0", (run_uuid,))
        )
        wrong = {k: (logged.get(k), v) for k, v in expected.items() if not abs(logged.get(k, np.inf) - v) <= 1e-9}
        assert not wrong, f"{name}: (logged, recomputed) differ: {wrong}"


def _versions(database: wh.Warehouse) -> list[tuple[int, str]]:
    return [
        (int(v), r)
        for v, r in rows(database, "select version, run_id from mlflow.model_versions where name = %s", (MODEL,))
    ]


def test_champion_alias_points_at_the_best_macro_f1_version(built):
    assert_alias_is_best_of_batch(built, "champion")


def assert_alias_is_best_of_batch(built: wh.Warehouse, alias: str, batch: int = -1) -> None:
    """The alias is on the best version of a `train` invocation (default: the latest): macro F1
    recomputed from the stored rows; ties to lower log_loss, then lower version."""
    versions = _versions(built)
    assert {run for _, run in versions} >= {run for run, _, _ in finished_runs(built)}  # one version per run
    ordered = sorted(versions)
    start = len(ordered) + batch * N_CANDIDATES
    latest_batch = ordered[start : start + N_CANDIDATES]  # that `train` invocation's versions
    scored = []
    for version, run_uuid in latest_batch:
        y_true, y_pred, proba = stored_run(built, run_uuid)
        macro_f1 = skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
        scored.append(
            ((-round(macro_f1, 12), round(skm.log_loss(y_true, proba, labels=[1, 2, 3]), 12), version), macro_f1)
        )
    (_, _, best_version), best_f1 = min(scored)
    assert best_f1 == max(f1 for _, f1 in scored)
    held = rows(
        built, "select version from mlflow.registered_model_aliases where name = %s and alias = %s", (MODEL, alias)
    )
    assert held == [(best_version,)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy's, about MLflow's mappers
def test_champion_loads_from_the_registry_and_reproduces_its_stored_predictions(built, monkeypatch):
    import mlflow.sklearn

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow's gate on loading any model
    uri = built.sqlalchemy_url("mlflow")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    (run_uuid,) = rows(
        built,
        "select v.run_id from mlflow.model_versions as v join mlflow.registered_model_aliases as a"
        " on a.name = v.name and a.version::text = v.version::text where a.alias = 'champion' and v.name = %s",
        (MODEL,),
    )[0]
    columns = ", ".join(f's."{name}"' for name in FEATURES.values())
    stored = rows(
        built,
        f"select {columns}, p.class from dataset.predictions as p join dataset.samples as s using (sample_index)"
        " where p.run_uuid = %s order by p.prediction_index",
        (run_uuid,),
    )
    import pandas as pd

    features = pd.DataFrame([r[:-1] for r in stored], columns=list(FEATURES.values()))
    assert model.predict(features).tolist() == [r[-1] for r in stored]
    _, _, proba = stored_run(built, run_uuid)
    np.testing.assert_array_equal(model.predict_proba(features), proba)  # stored exactly, not rounded


def test_tree_models_trust_exactly_their_scikit_learn_types(built):
    for run_uuid, name, family in finished_runs(built):
        (location,) = rows(
            built, "select artifact_location from mlflow.logged_models where source_run_id = %s", (run_uuid,)
        )[0]
        flavor = yaml.safe_load(Path(urlparse(location).path, "MLmodel").read_text())["flavors"]["sklearn"]
        assert flavor["serialization_format"] == "skops", name
        if family == "tree_ensemble":
            assert flavor["skops_trusted_types"] == ["sklearn.tree._tree.Tree"], name
        assert all(t.startswith("sklearn.") for t in flavor["skops_trusted_types"]), name


@pytest.fixture
def rerun_copy(built):
    """A copy of the demo database to train a second batch into: `built` is shared by the
    worker's modules, which read it as the demo left it."""
    copy = clone_database(built, f"{built.database}_rerun")
    yield copy
    drop_database(copy)


def test_rerun_appends_runs_and_leaves_earlier_rows_identical(rerun_copy):
    copy = rerun_copy
    snapshot_queries = {
        "predictions": "select t::text from dataset.predictions as t order by prediction_id",
        "prediction_scores": "select t::text from dataset.prediction_scores as t order by prediction_id, class",
        "runs": "select t::text from mlflow.runs as t order by run_uuid",
        "metrics": "select t::text from mlflow.metrics as t order by run_uuid, key, step, timestamp",
        "params": "select t::text from mlflow.params as t order by run_uuid, key",
        "tags": "select t::text from mlflow.tags as t order by run_uuid, key",
        "model_versions": "select t::text from mlflow.model_versions as t order by version",
    }
    before = {name: [r[0] for r in rows(copy, query)] for name, query in snapshot_queries.items()}
    runs_before = finished_runs(copy)

    done = run_ml_eval("train", env=copy.env())
    lines = done.stdout.strip().splitlines()
    assert sum(line.startswith("run ") for line in lines) == N_CANDIDATES
    # the same candidates on the same split score the same: a tie never takes the alias
    assert lines[-1].startswith(f"challenger: {MODEL} v")
    assert lines[-1].endswith("not better by more than 0")

    after = {name: [r[0] for r in rows(copy, query)] for name, query in snapshot_queries.items()}
    for name in snapshot_queries:
        assert set(before[name]) <= set(after[name]), f"{name}: an earlier row changed or vanished"
    assert after["predictions"][: len(before["predictions"])] == before["predictions"]
    runs_after = finished_runs(copy)
    assert runs_after[: len(runs_before)] == runs_before
    new_runs = runs_after[len(runs_before) :]
    assert len(new_runs) == N_CANDIDATES
    assert len(after["predictions"]) == len(before["predictions"]) + N_CANDIDATES * N_TEST
    assert_alias_is_best_of_batch(copy, "challenger")
    assert_alias_is_best_of_batch(copy, "champion", batch=-2)  # the first batch's best keeps it
    (challenger,) = rows(copy, "select version from mlflow.registered_model_aliases where alias = 'challenger'")[0]
    assert dict(_versions(copy))[challenger] in {run for run, _, _ in new_runs}
    assert lines[-1].startswith(f"challenger: {MODEL} v{challenger} = run ")


# --- failures and bad input (databases of their own) ------------------------------------


def load_wine_tables(database: wh.Warehouse) -> None:
    """The seed tables with their documented names and types, written directly (no dbt), in the
    seed schema `wine`, which `ml-eval train` reads and registers in the Dataset Database."""
    data = seed_rows()
    features = ", ".join(f'"{name}" double precision' for name in FEATURES.values())
    with database.connect() as conn, conn.transaction():
        conn.execute("create schema if not exists wine")
        conn.execute("drop table if exists wine.samples, wine.targets")
        conn.execute(
            f"create table wine.samples (sample_id integer, dataset_id integer, sample_index integer, {features})"
        )
        conn.execute(
            "create table wine.targets (target_id integer, sample_index integer, target_index integer, class integer)"
        )
        with conn.cursor() as cursor:
            for table in ("samples", "targets"):
                columns = list(data[table][0])
                quoted = ", ".join(f'"{c}"' for c in columns)
                with cursor.copy(f"copy wine.{table} ({quoted}) from stdin") as copy:
                    for row in data[table]:
                        copy.write_row([row[c] for c in columns])


@pytest.fixture(scope="module")
def scratch(warehouse: wh.Warehouse):
    database = warehouse.with_database(warehouse.database + "_train")
    wh.ensure_database(database, fresh=True)
    load_wine_tables(database)
    yield database
    drop_database(database)


class MajorityClassifier(ClassifierMixin, BaseEstimator):
    """A real, minimal scikit-learn classifier: always the most frequent training class."""

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[counts.argmax()]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)

    def predict_proba(self, X):
        return np.tile((self.classes_ == self.majority_).astype(float), (len(X), 1))


class ProbabilitiesBreak(MajorityClassifier):
    """Fails after fitting, while the run computes its probabilities (before any row is written)."""

    def predict_proba(self, X):
        raise RuntimeError("predict_proba broke on purpose")


def _state(database: wh.Warehouse) -> dict[str, object]:
    """What a refused or failed invocation must leave as it was."""
    with database.connect() as conn:
        has_mlflow = conn.execute("select to_regclass('mlflow.runs') is not null").fetchone()[0]
        has_predictions = conn.execute("select to_regclass('dataset.predictions') is not null").fetchone()[0]
        state: dict[str, object] = {"mlflow schema": has_mlflow, "prediction tables": has_predictions}
        if has_mlflow:
            for table in ("runs", "experiments", "registered_models", "model_versions", "metrics"):
                state[table] = conn.execute(f"select count(*) from mlflow.{table}").fetchone()[0]
        if has_predictions:
            for table in ("predictions", "prediction_scores"):
                state[table] = conn.execute(f"select count(*) from dataset.{table}").fetchone()[0]
    return state


def _prediction_sequence(database: wh.Warehouse) -> int:
    """The identity sequence's position: sequences are not rolled back, so it shows rows once written."""
    (value,) = rows(
        database, "select coalesce(nextval(pg_get_serial_sequence('dataset.predictions', 'prediction_id')), 0)"
    )[0]
    return value


@pytest.mark.parametrize(
    ("estimator", "failure", "rows_written_then_rolled_back"),
    [
        (ProbabilitiesBreak, "RuntimeError: predict_proba broke on purpose", False),
        # predictions are written, then saving the model refuses a type outside scikit-learn
        (MajorityClassifier, "refusing to save a model holding types outside scikit-learn:", True),
    ],
    ids=["predict_proba-raises", "model-refused-after-predictions-were-written"],
)
def test_a_run_failing_midway_is_failed_in_mlflow_with_no_predictions(
    scratch, estimator, failure, rows_written_then_rolled_back
):
    experiment = f"failing-{estimator.__name__}"
    settings = Settings.from_config(CONFIG, experiment=experiment, registered_model=experiment)
    good = Candidate("baseline-most-frequent", "baseline", default_candidates()[0].build, ("strategy",))
    bad = Candidate("breaks-midway", "baseline", estimator)
    with pytest.raises(UserError, match=r"run breaks-midway .* failed and is marked FAILED") as raised:
        train(scratch, settings, [good, bad], report=lambda line: None)
    assert failure in str(raised.value)
    before = _prediction_sequence(scratch)
    with pytest.raises(UserError):
        train(
            scratch,
            Settings.from_config(CONFIG, experiment=experiment + "-alone", registered_model=experiment),
            [bad],
            report=lambda line: None,
        )
    written = _prediction_sequence(scratch) - before - 1
    assert (written >= N_TEST) is rows_written_then_rolled_back

    runs = rows(
        scratch,
        "select r.name, r.status, count(p.prediction_id) from mlflow.runs as r"
        " join mlflow.experiments as e using (experiment_id)"
        " left join dataset.predictions as p on p.run_uuid = r.run_uuid"
        " where e.name like %s group by 1, 2, r.start_time order by r.start_time",
        (experiment + "%",),
    )
    assert runs == [
        ("baseline-most-frequent", "FINISHED", N_TEST),
        ("breaks-midway", "FAILED", 0),
        ("breaks-midway", "FAILED", 0),
    ]
    versions = rows(scratch, "select count(*) from mlflow.model_versions where name = %s", (experiment,))
    assert versions == [(1,)]  # the good run's only
    aliases = rows(scratch, "select count(*) from mlflow.registered_model_aliases where name = %s", (experiment,))
    assert aliases == [(0,)]  # no champion from an invocation that failed


BAD_INPUTS = {
    "missing-samples": ("drop table wine.samples", "no samples to train on: table wine.samples does not exist"),
    "empty-samples": ("delete from wine.samples", "no samples to train on: table wine.samples is empty"),
    "missing-targets": ("drop table wine.targets", "no targets to train on: table wine.targets does not exist"),
    "single-class": ("update wine.targets set class = 2", "the targets hold a single class (2)"),
    "samples-without-targets": (
        "delete from wine.targets where sample_index in (3, 7)",
        "2 of 178 samples have no target in wine.targets (sample_index 3, 7)",
    ),
    "null-feature": (
        'update wine.samples set "Hue" = null where sample_index = 5',
        'wine.samples."Hue" holds 1 NULL value (sample_index 5)',
    ),
    "unreachable-database": (None, "cannot connect to PostgreSQL at 127.0.0.1:1"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_stops_with_one_line_and_writes_nothing(scratch, case):
    breakage, message = BAD_INPUTS[case]
    load_wine_tables(scratch)
    if breakage:
        with scratch.connect() as conn:
            conn.execute(breakage)
    env = scratch.env() if breakage else {**scratch.env(), "PGHOST": "127.0.0.1", "PGPORT": "1"}
    before = _state(scratch)
    done = run_ml_eval("train", env=env, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("ml-eval: error: ") and message in done.stderr, done.stderr
    assert not any(line.startswith("run ") for line in done.stdout.splitlines())
    assert _state(scratch) == before
    load_wine_tables(scratch)
