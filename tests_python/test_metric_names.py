"""Logged metrics by any name: fct_run_evaluation compares what a run logged under any key of
var mlflow_metric_names (in order of preference) with what it computes, and a run none of
whose logged metrics is mapped is shown as not compared, never as agreeing.

One module database holds the Wine seeds, registered in the Dataset Database, and real MLflow
runs whose predictions are written by the producer's writer; the logged values are
scikit-learn's, computed from those predictions. The cases that change the input or the vars
work on a clone of it.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql
from sklearn import metrics as skm

from conftest import CONFIG, clone_database, register_wine
from ml_eval import mlflow_names
from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError
from ml_eval.producer import predictions as pred
from ml_eval.producer.train import Settings

TOLERANCE = 1e-9
CLASSES = [1, 2, 3]
COLUMNS = (
    "run_name", "accuracy", "f1_macro", "logged_accuracy", "logged_f1_macro", "logged_f1_weighted",
    "logged_example_count", "compared_mlflow_keys", "n_compared_metrics", "mlflow_agreement", "agrees_with_mlflow",
    "model_family",
)  # fmt: skip

pytestmark = pytest.mark.usefixtures("isolated_environment")


class Runs:
    """The module database, its runs by name, and scikit-learn's scores of each."""

    def __init__(self, database: wh.Warehouse):
        self.database = database
        self.ids: dict[str, str] = {}
        self.scores: dict[str, dict[str, float]] = {}

    def client(self, database: wh.Warehouse | None = None) -> MlflowClient:
        url = (database or self.database).sqlalchemy_url("mlflow")
        return MlflowClient(url, url)

    def add(self, database: wh.Warehouse, name: str, truth, indexes, predicted, proba, classes,
            logged, tags=None) -> str:  # fmt: skip
        """A finished MLflow run with these predictions, logging `logged` (key -> a score name
        of `scores`, or a number)."""
        client = self.client(database)
        experiment = client.get_experiment_by_name("metric-names")
        experiment_id = experiment.experiment_id if experiment else client.create_experiment("metric-names")
        run_uuid = client.create_run(experiment_id, run_name=name, tags=tags or {}).info.run_id
        with database.connect() as conn, conn.transaction():
            pred.write_batch(conn, run_uuid, indexes, predicted, proba, classes, schema=CONFIG.dataset_schema)
        scores = {
            "accuracy": skm.accuracy_score(truth, predicted),
            "f1_macro": skm.f1_score(truth, predicted, average="macro", zero_division=0),
            "f1_weighted": skm.f1_score(truth, predicted, average="weighted", zero_division=0),
            "f1_binary": skm.f1_score(truth, predicted, pos_label=max(classes), zero_division=0)
            if len(classes) == 2
            else float("nan"),
            "log_loss": skm.log_loss(truth, proba, labels=classes),
        }
        for key, value in logged.items():
            client.log_metric(run_uuid, key, scores[value] if isinstance(value, str) else value)
        client.set_terminated(run_uuid, "FINISHED")
        self.ids[name], self.scores[name] = run_uuid, scores
        return run_uuid


def _rows(database: wh.Warehouse) -> dict[str, dict]:
    """fct_run_evaluation's rows (the columns this module checks), by run name."""
    with database.connect() as conn:
        found = conn.execute(
            sql.SQL("select {} from marts.fct_run_evaluation").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
        ).fetchall()
    return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in found}


def _targets(database: wh.Warehouse) -> tuple[np.ndarray, np.ndarray]:
    with database.connect() as conn:
        rows = conn.execute("select sample_index, class from dataset.targets order by sample_index").fetchall()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def _noisy(truth: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions wrong on every `every`-th sample, and probability rows that sum to 1."""
    predicted = np.where(np.arange(len(truth)) % every == 0, truth % 3 + 1, truth)
    proba = np.eye(3)[predicted - 1] * 0.7 + 0.1
    return predicted, proba


@pytest.fixture(scope="module")
def runs(warehouse: wh.Warehouse) -> Runs:
    """Seeds, runs that log their scores under different names, and the marts (--warn-error)."""
    database = warehouse.with_database(warehouse.database + "_names")
    wh.ensure_database(database, fresh=True)
    run_dbt(["seed"], database)
    with database.connect(autocommit=True) as conn:
        conn.execute("create schema if not exists mlflow")
    register_wine(database)  # the Wine seeds in the Dataset Database, as train does
    sample_index, truth = _targets(database)
    made = Runs(database)
    predicted, proba = _noisy(truth, 5)
    # the names many training scripts log, not MLflow's evaluator names
    made.add(database, "short names", truth, sample_index, predicted, proba, CLASSES,
             {"accuracy": "accuracy", "f1_macro": "f1_macro"},
             tags={"model_family": "linear", "team_family": "glm"})  # fmt: skip
    # only names nobody maps: a validation score, a loss, a name of the team's own
    made.add(database, "unmapped", truth, sample_index, predicted, proba, CLASSES,
             {"val_accuracy": 0.5, "training_loss": 0.3, "holdout_acc": "accuracy"})  # fmt: skip
    # both a preferred key (right) and a less preferred one (wrong): the preferred is read
    made.add(database, "preferred key", truth, sample_index, predicted, proba, CLASSES,
             {"accuracy_score": "accuracy", "acc": 0.123})  # fmt: skip
    # the example count alone compares no metric
    made.add(database, "count only", truth, sample_index, predicted, proba, CLASSES, {"example_count": len(truth)})
    # a binary run: its f1_score is the positive class's (scikit-learn's default), not weighted
    keep = truth < 3
    binary_predicted = np.where(np.arange(keep.sum()) % 4 == 0, 3 - truth[keep], truth[keep])
    binary_proba = np.eye(2)[binary_predicted - 1] * 0.8 + 0.1
    made.add(database, "binary", truth[keep], sample_index[keep], binary_predicted, binary_proba, [1, 2],
             {"f1_score": "f1_binary", "test_log_loss": "log_loss"})  # fmt: skip
    run_dbt(["build", "--warn-error"], database)
    yield made
    with database.connect("postgres", autocommit=True) as conn:
        for (name,) in conn.execute(
            "select datname from pg_database where datname like %s", (database.database.replace("_", r"\_") + "%",)
        ).fetchall():
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def clone(runs: Runs) -> wh.Warehouse:
    """A copy of the module database for one case, dropped afterwards (one name for every case:
    dbt's partial parsing is keyed by the connection)."""
    copy = clone_database(runs.database, f"{runs.database.database}_case")
    yield copy
    with runs.database.connect("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(copy.database)))


def test_a_run_logging_accuracy_and_f1_macro_is_compared_and_agrees(runs: Runs):
    row = _rows(runs.database)["short names"]
    scores = runs.scores["short names"]
    assert row["logged_accuracy"] == pytest.approx(scores["accuracy"], abs=TOLERANCE)
    assert row["logged_f1_macro"] == pytest.approx(scores["f1_macro"], abs=TOLERANCE)
    assert abs(row["accuracy"] - scores["accuracy"]) <= TOLERANCE
    assert abs(row["f1_macro"] - scores["f1_macro"]) <= TOLERANCE
    assert row["compared_mlflow_keys"] == {"accuracy": "accuracy", "f1_macro": "f1_macro"}
    assert row["n_compared_metrics"] == 2
    assert (row["mlflow_agreement"], row["agrees_with_mlflow"]) == ("agrees", True)
    assert row["model_family"] == "linear"  # var model_family_tags' default: [model_family]


def test_a_run_with_only_unmapped_names_is_not_compared_never_agreeing(runs: Runs):
    row = _rows(runs.database)["unmapped"]
    assert (row["mlflow_agreement"], row["agrees_with_mlflow"], row["n_compared_metrics"]) == ("not compared", None, 0)
    assert row["compared_mlflow_keys"] is None
    assert row["logged_accuracy"] is None  # val_accuracy (0.5) is a validation score: not read


def test_the_first_key_in_order_of_preference_is_the_one_compared(runs: Runs):
    row = _rows(runs.database)["preferred key"]
    assert row["compared_mlflow_keys"] == {"accuracy": "accuracy_score"}
    assert row["logged_accuracy"] == pytest.approx(runs.scores["preferred key"]["accuracy"], abs=TOLERANCE)
    assert row["mlflow_agreement"] == "agrees"  # acc (0.123, wrong) comes later in the list: not read


def test_the_example_count_alone_compares_no_metric(runs: Runs):
    row = _rows(runs.database)["count only"]
    assert row["logged_example_count"] == 178
    assert (row["mlflow_agreement"], row["agrees_with_mlflow"], row["n_compared_metrics"]) == ("not compared", None, 0)


def test_a_binary_runs_positive_class_f1_score_is_not_read_as_the_weighted_f1(runs: Runs):
    row = _rows(runs.database)["binary"]
    scores = runs.scores["binary"]
    assert abs(scores["f1_binary"] - scores["f1_weighted"]) > 1e-3  # the two differ on this run
    assert row["logged_f1_weighted"] is None
    assert row["compared_mlflow_keys"] == {"log_loss": "test_log_loss"}
    assert (row["mlflow_agreement"], row["n_compared_metrics"]) == ("agrees", 1)


def test_a_wrong_value_under_a_mapped_name_disagrees_and_fails_the_build(runs: Runs, clone: wh.Warehouse):
    sample_index, truth = _targets(clone)
    predicted, proba = _noisy(truth, 7)
    runs.add(clone, "wrong f1", truth, sample_index, predicted, proba, CLASSES,
             {"accuracy": "accuracy", "macro_f1": 0.25})  # fmt: skip
    with pytest.raises(UserError) as failure:
        run_dbt(["build"], clone)
    message = str(failure.value)
    assert "\n" not in message and "assert_run_metrics_agree_with_mlflow (1 failing rows)" in message, message
    row = _rows(clone)["wrong f1"]
    assert row["compared_mlflow_keys"] == {"accuracy": "accuracy", "f1_macro": "macro_f1"}
    assert abs(row["f1_macro"] - runs.scores["wrong f1"]["f1_macro"]) <= TOLERANCE
    assert (row["mlflow_agreement"], row["agrees_with_mlflow"], row["logged_f1_macro"]) == ("disagrees", False, 0.25)
    with clone.connect() as conn:
        failing = conn.execute("select run_name from audit.assert_run_metrics_agree_with_mlflow").fetchall()
    assert failing == [("wrong f1",)]


def test_a_mapping_and_tags_passed_with_vars_replace_the_defaults(runs: Runs, clone: wh.Warehouse):
    """A team whose scripts log `holdout_acc` and tag `team_family` says so in --vars; the
    mapping given replaces the default one whole, so `accuracy` is no longer read."""
    given = {"mlflow_metric_names": {"accuracy": ["holdout_acc"]}, "model_family_tags": ["team_family", "model_family"]}
    run_dbt(["build", "--warn-error", "--vars", json.dumps(given)], clone)
    rows = _rows(clone)
    unmapped, short = rows["unmapped"], rows["short names"]
    assert unmapped["compared_mlflow_keys"] == {"accuracy": "holdout_acc"}
    assert unmapped["logged_accuracy"] == pytest.approx(runs.scores["unmapped"]["accuracy"], abs=TOLERANCE)
    assert (unmapped["mlflow_agreement"], unmapped["agrees_with_mlflow"]) == ("agrees", True)
    assert (short["mlflow_agreement"], short["logged_accuracy"]) == ("not compared", None)
    assert short["model_family"] == "glm"  # team_family is preferred to model_family
    with clone.connect() as conn:
        family = conn.execute("select model_family from marts.dim_runs where run_name = 'short names'").fetchone()
    assert family == ("glm",)


def test_the_git_commit_is_the_first_tag_in_order_of_preference(runs: Runs, clone: wh.Warehouse):
    """MLflow's own commit tag sorts after ml-eval's: the preferred one wins, not the greatest."""
    client = runs.client(clone)
    client.set_tag(runs.ids["short names"], "git_commit", "aaaa")
    client.set_tag(runs.ids["short names"], "mlflow.source.git.commit", "ffff")
    client.set_tag(runs.ids["unmapped"], "mlflow.source.git.commit", "ffff")
    run_dbt(["build", "--warn-error"], clone)
    with clone.connect() as conn:
        commits = dict(conn.execute("select run_name, git_commit from marts.dim_runs"))
    assert commits["short names"] == "aaaa" and commits["unmapped"] == "ffff" and commits["binary"] is None


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"mlflow_metric_keys": {"accuracy": "acc"}}, "var mlflow_metric_keys is now mlflow_metric_names"),
        ({"model_family_tag": "family"}, "var model_family_tag is now model_family_tags"),
        ({"mlflow_metric_names": {"accuracy_pct": ["acc"]}}, "'accuracy_pct' is not a metric fct_run_evaluation"),
        ({"mlflow_metric_names": {"accuracy": [1]}}, "var mlflow_metric_names.accuracy must be a list of keys"),
    ],
)
def test_a_misconfigured_mapping_stops_with_one_line(runs: Runs, given: dict, said: str):
    with pytest.raises(UserError) as failure:
        run_dbt(["compile", "--select", "fct_run_evaluation", "--vars", json.dumps(given)], runs.database)
    message = str(failure.value)
    assert "\n" not in message and said.replace("'", '"') in message.replace("'", '"'), message


def test_the_producer_logs_each_metric_under_the_key_the_marts_prefer():
    names = CONFIG.var("mlflow_metric_names")
    settings = Settings.from_config(CONFIG)
    assert settings.metric_keys == {metric: keys[0] for metric, keys in names.items()}
    assert settings.metric_keys["f1_macro"] == "f1_score_macro"  # MLflow's evaluator names stay
    assert settings.model_family_tag == "model_family" and settings.git_commit_tag == "git_commit"
    assert "val_accuracy" not in {key for keys in names.values() for key in keys}


def test_the_producer_refuses_a_renamed_var():
    renamed = dataclasses.replace(CONFIG, vars={**CONFIG.vars, "mlflow_metric_keys": {"accuracy": "acc"}})
    with pytest.raises(UserError, match="dbt var mlflow_metric_keys is now mlflow_metric_names"):
        mlflow_names.logged_metric_keys(renamed)
