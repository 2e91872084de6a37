"""Trust: bad input is named by a test and never published, builds are repeatable and
recover from a killed connection, and every role can do only its job.

One baseline database is built per module, the way production runs: the roles are created
(`ml_eval.roles`), MLflow runs and predictions are written by the administrator (the
producer), and dbt runs as `ml_eval_transformer` from the first seed on. Each case that
breaks an input works on a clone (`create database ... template <baseline>`), so the
baseline's published marts are the reference every case compares with.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql

from conftest import CONFIG, PROJECT_DIR, clone_database, register_wine
from ml_eval import datasets, roles
from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError
from ml_eval.producer import predictions as pred

pytestmark = pytest.mark.usefixtures("isolated_environment")

NAMES = roles.RoleNames()
CLASSES = [1, 2, 3]
MAX_DOUBLE = 1.7976931348623157e308
# Text MLflow accepts in keys (its validation allows word characters, spaces, . - / :)
# and anything in values: quotes, unicode, JSON and SQL-looking text.
PARAMS = {
    "learning rate/η": "0.1",
    "α:β": 'it\'s "quoted"',
    "drop table x": "'); drop table x; --",
    "ключ": "vin rouge 🍷 — ünïcödé ✓",
    "json": '{"a": [1, 2], "b": null}',
    "whitespace": "back\\slash\ttab\nnew line",
    "empty": "",
}
TAGS = {
    "model_family": "forest'); delete from mlflow.runs; --",
    "note/ñ": "$$ dollar $$ quoting $tag$, 📝 and %s %(x)s",
}
# A key MLflow's client would refuse, written by another writer straight into MLflow's table.
RAW_TAG = ("key 📝 with 'quotes', \"doubles\"; drop table y; --", "value \\' \u2028 end")
EXPERIMENT_NAME = "trust 'ü' \"exp\"; drop table z; --"


@dataclass
class Baseline:
    admin: wh.Warehouse  # the producer: MLflow and predictions are written as this role
    database: str
    runs: dict[str, str]  # label -> run_uuid
    published: dict[str, str]  # table -> checksum
    marts: dict[str, str]

    def as_role(self, role: str, database: str | None = None) -> wh.Warehouse:
        variable = {NAMES.transformer: "ML_EVAL_TRANSFORMER_PASSWORD", NAMES.reporter: "ML_EVAL_REPORTER_PASSWORD"}
        password = os.environ.get(variable.get(role, ""), "")
        a = self.admin
        return wh.Warehouse(a.host, a.port, role, password, database or self.database, a.embedded)

    def clone(self, suffix: str) -> wh.Warehouse:
        """A copy of the baseline database (its owners and grants included), as admin."""
        copy = clone_database(self.admin, f"{self.database}_{suffix}")
        # a database's own privileges (CREATE, TEMP) are not copied from its template
        roles.create_roles(copy, CONFIG)
        return copy


def checksums(database: wh.Warehouse, schema: str) -> dict[str, str]:
    """md5 of the rows of every table and view in `schema`, read as the administrator."""
    with database.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
                " where n.nspname = %s and c.relkind in ('r', 'v') order by 1",
                (schema,),
            )
        ]
        return {
            table: conn.execute(
                sql.SQL("select md5(string_agg(t::text, ',' order by t::text)) from {} as t").format(
                    sql.Identifier(schema, table)
                )
            ).fetchone()[0]
            for table in tables
        }


def _targets() -> tuple[np.ndarray, np.ndarray]:
    """Sample indexes and true classes, from the seed file (the database has no seed yet)."""
    lines = (PROJECT_DIR / "seeds" / "dataset" / "targets.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    return np.array([int(r["sample_index"]) for r in rows]), np.array([int(r["class"]) for r in rows])


def _write(conn: psycopg.Connection, run_uuid: str, indexes, truth) -> None:
    predicted = np.where(np.arange(len(truth)) % 7 == 0, truth % 3 + 1, truth)  # some wrong
    proba = np.eye(3)[predicted - 1] * 0.7 + 0.1  # rows sum to 1
    with conn.transaction():
        pred.write_batch(conn, run_uuid, indexes, predicted, proba, CLASSES, schema=CONFIG.dataset_schema)


@pytest.fixture(scope="module")
def baseline(warehouse: wh.Warehouse) -> Baseline:
    admin = warehouse.with_database(warehouse.database + "_trust")
    wh.ensure_database(admin, fresh=True)
    try:
        roles.create_roles(admin, CONFIG)
        sample_index, truth = _targets()
        url = admin.sqlalchemy_url("mlflow")
        client = MlflowClient(url, url)
        experiment_id = client.create_experiment(EXPERIMENT_NAME)
        doomed_experiment = client.create_experiment("deleted experiment")
        runs: dict[str, str] = {}
        register_wine(admin, from_files=True)
        with admin.connect() as conn:
            pred.ensure_tables(conn, CONFIG.dataset_schema)

            def run(label: str, experiment: str = experiment_id, predictions: slice | None = slice(None)) -> str:
                run_uuid = client.create_run(experiment, run_name=f"{label} 'ü'; --").info.run_id
                if predictions is not None:
                    _write(conn, run_uuid, sample_index[predictions], truth[predictions])
                runs[label] = run_uuid
                return run_uuid

            good = run("good")
            for key, value in PARAMS.items():
                client.log_param(good, key, value)
            for key, value in TAGS.items():
                client.set_tag(good, key, value)
            for step, value in enumerate([0.5, float("nan"), float("inf"), float("-inf")]):
                client.log_metric(good, "training_loss", value, timestamp=1_700_000_000_000 + step, step=step)
            client.set_terminated(good, "FINISHED")
            client.set_terminated(run("spare", predictions=slice(0, 100)), "FINISHED")  # a partial batch
            run("running")  # never terminated: RUNNING
            client.set_terminated(run("failed"), "FAILED")
            client.set_terminated(run("killed"), "KILLED")
            client.set_terminated(run("deleted"), "FINISHED")
            client.delete_run(runs["deleted"])
            client.set_terminated(run("in deleted experiment", doomed_experiment), "FINISHED")
            client.delete_experiment(doomed_experiment)
            client.set_terminated(run("no predictions", predictions=None), "FINISHED")
            conn.execute("insert into mlflow.tags (key, value, run_uuid) values (%s, %s, %s)", (*RAW_TAG, good))
            conn.commit()
        # dbt runs as the transformer from the very first seed: it owns what it builds
        run_dbt(["build"], Baseline(admin, admin.database, runs, {}, {}).as_role(NAMES.transformer))
        yield Baseline(admin, admin.database, runs, checksums(admin, "published"), checksums(admin, "marts"))
    finally:  # also when the set-up fails: every database of this module goes
        with admin.connect("postgres", autocommit=True) as conn:
            for (name,) in conn.execute(
                "select datname from pg_database where datname like %s", (admin.database.replace("_", r"\_") + "%",)
            ).fetchall():
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def test_the_baseline_publishes_every_mart(baseline: Baseline):
    assert baseline.published == baseline.marts
    assert {"fct_run_evaluation", "fct_metric_history", "dim_runs"} <= set(baseline.published)
    empty = {table for table, checksum in baseline.published.items() if checksum is None}
    # no model is registered here: nothing to promote, alias, gate or watch
    assert empty == {"dim_model_versions", "fct_alias_history", "fct_promotion_decisions", "rpt_model_health",
                     "rpt_quality_gates"}  # fmt: skip


# --- 1. bad input: named by a test, nothing published ------------------------------------


@dataclass
class Batch:
    """One run's predictions as the producer writes them: every sample, probabilities per class."""

    indexes: list[int]
    predicted: list[int]
    proba: list[list[float]]
    classes: list[int]

    @classmethod
    def good(cls) -> Batch:
        indexes, truth = _targets()
        proba = np.eye(3)[truth - 1] * 0.7 + 0.1
        return cls(indexes.tolist(), truth.tolist(), proba.tolist(), list(CLASSES))


def _unknown_sample(batch: Batch) -> None:
    batch.indexes[-1] = 9999


def _duplicate_prediction(batch: Batch) -> None:
    batch.indexes[1] = batch.indexes[0]  # sample 0 twice in one run


def _probabilities_off(batch: Batch) -> None:
    batch.proba[5] = [0.5, 0.3, 0.1]  # sums to 0.9


def _unknown_predicted_class(batch: Batch) -> None:
    batch.predicted[6] = 7


def _unknown_scored_class(batch: Batch) -> None:
    batch.classes = [1, 2, 4]


# case -> (what is wrong with the new run's batch, or None: the batch names a run MLflow lacks;
#          what the one-line error must say;
#          for a singular test, the failing rows dbt stores in schema audit)
BAD_INPUTS = {
    "unknown_sample": (_unknown_sample, "predictions.sample_index: relationships (1 failing rows)", None),
    "unknown_run": (None, "predictions.run_uuid: relationships (178 failing rows)", None),
    "duplicate_prediction": (
        _duplicate_prediction, "predictions: unique_combination_of_columns (1 failing rows)", None
    ),
    "probabilities_off": (
        _probabilities_off,
        "prediction_scores: assert_prediction_probabilities_sum_to_one (1 failing rows)",
        ("select n_scored_classes, round(probability_sum::numeric, 9)::float"
         " from audit.assert_prediction_probabilities_sum_to_one", [(3, 0.9)]),
    ),
    "unknown_predicted_class": (
        _unknown_predicted_class,
        "assert_predicted_classes_are_target_classes (1 failing rows)",
        ("select sample_index, predicted_class from audit.assert_predicted_classes_are_target_classes", [(6, 7)]),
    ),
    "unknown_scored_class": (
        _unknown_scored_class,
        "assert_scored_classes_are_target_classes (178 failing rows)",
        ("select distinct score_class from audit.assert_scored_classes_are_target_classes", [(4,)]),
    ),
}  # fmt: skip


def _produce(database: wh.Warehouse, batch: Batch, run_name: str, *, tracked: bool = True,
             logged: dict[str, float] | None = None) -> str:  # fmt: skip
    """What the producer does: a new MLflow run, its batch in one transaction, FINISHED."""
    url = database.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url) if tracked else None
    if client:
        experiment_id = client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id
        run_uuid = client.create_run(experiment_id, run_name=run_name).info.run_id
    else:
        run_uuid = "f" * 32
    with database.connect() as conn, conn.transaction():
        pred.write_batch(
            conn, run_uuid, batch.indexes, batch.predicted, batch.proba, batch.classes, schema=CONFIG.dataset_schema
        )
    if client:
        for key, value in (logged or {}).items():
            client.log_metric(run_uuid, key, value)
        client.set_terminated(run_uuid, "FINISHED")
    return run_uuid


def _break_and_build(baseline: Baseline, case: str, breakage, **produce) -> tuple[wh.Warehouse, str, str]:
    """Clone the baseline, produce a broken run as the producer, build as the transformer."""
    broken = baseline.clone(case)
    batch = Batch.good()
    if breakage is not None:
        breakage(batch)
    run_uuid = _produce(broken, batch, case, tracked=breakage is not None or bool(produce), **produce)
    with pytest.raises(UserError) as failure:
        run_dbt(["build"], baseline.as_role(NAMES.transformer, broken.database))
    message = str(failure.value)
    assert "\n" not in message
    return broken, run_uuid, message


def _reporter_reads(baseline: Baseline, database: str) -> int:
    with baseline.as_role(NAMES.reporter, database).connect() as conn:
        return conn.execute("select count(*) from published.fct_run_evaluation").fetchone()[0]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_the_build_by_name_and_publishes_nothing(baseline: Baseline, case: str):
    breakage, problem, audit = BAD_INPUTS[case]
    broken, _, message = _break_and_build(baseline, case, breakage)
    assert message.startswith("dbt build failed: ") and problem in message, message
    assert checksums(broken, "published") == baseline.published
    assert _reporter_reads(baseline, broken.database) == 2  # good and spare
    if audit:
        with broken.connect() as conn:
            assert conn.execute(audit[0]).fetchall() == audit[1]


@pytest.fixture(scope="module")
def disagreeing(baseline: Baseline) -> tuple[wh.Warehouse, str, str]:
    """A clone with a new finished run whose logged accuracy_score (0.123) is not the one
    its predictions give (1.0): found by a test on a mart, after the marts were written."""
    return _break_and_build(baseline, "disagreeing", None, logged={"accuracy_score": 0.123})


def test_write_audit_publish_keeps_the_published_marts_of_the_last_good_build(baseline, disagreeing):
    """The marts are written in `marts` with the new run and audited; the audit fails, so
    `published` stays as it was, readable by the reporter."""
    broken, run_uuid, message = disagreeing
    assert message.startswith("dbt build failed: ")
    assert "assert_run_metrics_agree_with_mlflow (1 failing rows)" in message, message
    with broken.connect() as conn:
        written = {r[0] for r in conn.execute("select run_uuid from marts.fct_run_evaluation")}
        leftovers = conn.execute("select 1 from pg_namespace where nspname = 'published__next'").fetchall()
    assert written == {run_uuid, baseline.runs["good"], baseline.runs["spare"]}  # written and audited...
    assert checksums(broken, "published") == baseline.published  # ...but not published
    assert _reporter_reads(baseline, broken.database) == 2
    assert leftovers == []


def test_once_the_input_is_repaired_the_next_build_publishes_it(baseline, disagreeing):
    """The producer logs the right value; the next build passes and publishes what `marts`
    holds, the new run and its metric history included."""
    broken, run_uuid, _ = disagreeing
    url = broken.sqlalchemy_url("mlflow")
    MlflowClient(url, url).log_metric(run_uuid, "accuracy_score", 1.0, step=1)
    run_dbt(["build"], baseline.as_role(NAMES.transformer, broken.database))
    assert checksums(broken, "published") == checksums(broken, "marts")
    with broken.connect() as conn:
        evaluation = conn.execute(
            "select logged_accuracy, agrees_with_mlflow from published.fct_run_evaluation where run_uuid = %s",
            (run_uuid,),
        ).fetchone()
        history = conn.execute(
            "select step, metric_value, is_latest from published.fct_metric_history"
            " where run_uuid = %s and metric_key = 'accuracy_score' order by step",
            (run_uuid,),
        ).fetchall()
    assert evaluation == (1.0, True)
    assert history == [(0, 0.123, False), (1, 1.0, True)]


def _published_predictions(database: wh.Warehouse) -> tuple[int, dict[str, int]]:
    """The published fct_predictions table's oid, and its rows per run."""
    with database.connect() as conn:
        oid = conn.execute("select 'published.fct_predictions'::regclass::oid").fetchone()[0]
        runs = dict(conn.execute("select run_uuid, count(*) from published.fct_predictions group by run_uuid"))
    return oid, runs


def test_published_predictions_gain_and_lose_whole_runs(baseline: Baseline):
    """fct_predictions is published run by run: the published table is kept (same oid, no
    copy of every row), a run deleted since leaves it, a new run joins it, and it equals the
    mart; a --full-refresh build refreshes it whole, in the same table, with the same rows."""
    copy = baseline.clone("by_run")
    before, runs_before = _published_predictions(copy)
    assert set(runs_before) == {baseline.runs["good"], baseline.runs["spare"]}
    url = copy.sqlalchemy_url("mlflow")
    MlflowClient(url, url).delete_run(baseline.runs["spare"])
    added = _produce(copy, Batch.good(), "added after publishing")
    run_dbt(["build"], baseline.as_role(NAMES.transformer, copy.database))
    after, runs_after = _published_predictions(copy)
    assert after == before
    assert runs_after == {baseline.runs["good"]: 178, added: 178}
    published = checksums(copy, "published")
    assert published == checksums(copy, "marts")
    run_dbt(["build", "--full-refresh"], baseline.as_role(NAMES.transformer, copy.database))
    rebuilt, _ = _published_predictions(copy)
    assert rebuilt == before  # published tables are never replaced while their columns stay
    assert checksums(copy, "published") == published
    with copy.connect() as conn:
        methods = dict(conn.execute("select mart, publish_method from audit.ml_eval_published_marts"))
    assert methods["fct_predictions"] == "whole"


# --- runs that are not evaluated, metric values MLflow cannot store, odd text -------------


def test_running_failed_and_deleted_runs_are_counted_not_evaluated(baseline: Baseline):
    with baseline.admin.connect() as conn:
        dim_runs = {
            row[0]: row[1:]
            for row in conn.execute(
                "select run_uuid, run_status, is_evaluated, exclusion_reason, n_predictions from published.dim_runs"
            )
        }
        evaluated = {r[0] for r in conn.execute("select run_uuid from published.fct_run_evaluation")}
        predicted = {r[0] for r in conn.execute("select distinct run_uuid from published.fct_predictions")}
    runs = baseline.runs
    assert set(dim_runs) == set(runs.values())  # every run is counted
    expected = {
        "good": ("FINISHED", True, None),
        "spare": ("FINISHED", True, None),
        "running": ("RUNNING", False, "run running"),
        "failed": ("FAILED", False, "run failed"),
        "killed": ("KILLED", False, "run killed"),
        "deleted": ("FINISHED", False, "run deleted"),
        # MLflow marks the runs of a deleted experiment deleted too
        "in deleted experiment": ("FINISHED", False, "run deleted"),
        "no predictions": ("FINISHED", False, "no predictions"),
    }
    assert {label: dim_runs[runs[label]][:3] for label in runs} == expected
    assert dim_runs[runs["failed"]][3] == 178  # its predictions exist, and are left out
    assert evaluated == predicted == {runs["good"], runs["spare"]}


def test_nan_and_infinite_metric_values_are_carried_not_mixed_in(baseline: Baseline):
    """NaN is null with is_nan; +-inf stay as MLflow stored them (+-the largest double)."""
    with baseline.admin.connect() as conn:
        history = conn.execute(
            "select step, metric_value, is_nan, is_infinite, is_latest from published.fct_metric_history"
            " where run_uuid = %s and metric_key = 'training_loss' order by step",
            (baseline.runs["good"],),
        ).fetchall()
        stored = conn.execute(
            "select step, value, is_nan from mlflow.metrics where run_uuid = %s order by step",
            (baseline.runs["good"],),
        ).fetchall()
    assert stored == [(0, 0.5, False), (1, 0.0, True), (2, MAX_DOUBLE, False), (3, -MAX_DOUBLE, False)]
    assert history == [
        (0, 0.5, False, False, False),
        (1, None, True, False, False),  # not the 0 MLflow stores
        (2, MAX_DOUBLE, False, True, False),
        (3, -MAX_DOUBLE, False, True, True),
    ]


def test_params_and_tags_with_quotes_unicode_and_sql_come_through_intact(baseline: Baseline):
    with baseline.admin.connect() as conn:
        params, tags, run_name, experiment = conn.execute(
            "select params, tags, run_name, experiment_name from published.dim_runs where run_uuid = %s",
            (baseline.runs["good"],),
        ).fetchone()
        family = conn.execute(
            "select model_family from published.fct_run_evaluation where run_uuid = %s", (baseline.runs["good"],)
        ).fetchone()[0]
        intact = conn.execute("select count(*) from mlflow.runs").fetchone()[0]
        no_injection = conn.execute("select to_regclass('x'), to_regclass('y'), to_regclass('z')").fetchone()
    assert params == PARAMS
    assert {k: tags[k] for k in TAGS} == TAGS and tags[RAW_TAG[0]] == RAW_TAG[1]
    assert run_name == "good 'ü'; --" and experiment == EXPERIMENT_NAME and family == TAGS["model_family"]
    assert intact == len(baseline.runs) and no_injection == (None, None, None)


# --- 3. idempotency and recovery -----------------------------------------------------------


def test_two_builds_in_a_row_give_identical_marts(baseline: Baseline):
    again = baseline.clone("again")
    run_dbt(["build"], baseline.as_role(NAMES.transformer, again.database))
    assert checksums(again, "marts") == baseline.marts
    assert checksums(again, "published") == baseline.published


def test_a_build_whose_connection_is_killed_completes_when_run_again(baseline: Baseline):
    killed = baseline.clone("killed")
    transformer = baseline.as_role(NAMES.transformer, killed.database)
    build = subprocess.Popen(
        [sys.executable, "-m", "ml_eval", "build", "--no-docs"],
        cwd=PROJECT_DIR,
        env={**os.environ, **transformer.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = None
    try:
        with baseline.admin.connect("postgres", autocommit=True) as conn:
            deadline = time.monotonic() + 180
            while victim is None and build.poll() is None and time.monotonic() < deadline:
                # a statement of a mart's build: active, or done and its transaction still open
                row = conn.execute(
                    "select pid, left(query, 120) from pg_stat_activity where datname = %s"
                    " and pid <> pg_backend_pid() and state in ('active', 'idle in transaction')"
                    " and query like %s and query not like %s",
                    (killed.database, '%"marts".%', "%$publish$%"),
                ).fetchone()
                if row:
                    victim = row
                    conn.execute("select pg_terminate_backend(%s)", (row[0],))
                else:
                    time.sleep(0.01)
        output, _ = build.communicate(timeout=300)
    finally:
        if build.poll() is None:
            build.send_signal(signal.SIGKILL)
            build.wait()
    assert victim is not None, f"no query on the marts was seen:\n{output[-2000:]}"
    assert build.returncode == 2, output[-3000:]
    assert "ml-eval: error: dbt build failed" in output
    assert checksums(killed, "published") == baseline.published  # not published, not half-swapped
    run_dbt(["build"], transformer)
    assert checksums(killed, "marts") == baseline.marts
    assert checksums(killed, "published") == baseline.published


# --- 4. least privilege ----------------------------------------------------------------------


def _denied(database: wh.Warehouse, statement: str) -> str:
    """The error of `statement` run as database's role: it must be a privilege error."""
    with database.connect(autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as denied:
        conn.execute(statement)
    return str(denied.value)


def test_the_reporter_reads_the_published_marts_and_nothing_else(baseline: Baseline):
    reporter = baseline.as_role(NAMES.reporter)
    with reporter.connect() as conn:
        for table in baseline.published:
            conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier("published", table)))
    raw_tables = (
        "mlflow.runs", "mlflow.metrics", "dataset.predictions", "dataset.samples", "wine.samples",
        "marts.fct_run_evaluation",
        "staging.stg_mlflow__runs", "audit.unique_fct_predictions_prediction_id",
    )  # fmt: skip
    for raw in raw_tables:
        assert "permission denied" in _denied(reporter, f"select * from {raw} limit 1")


@pytest.mark.parametrize(
    "statement",
    [
        "create table published.mine (x int)",
        "create table public.mine (x int)",
        "create temporary table mine (x int)",
        "create schema mine",
        "insert into published.dim_runs (run_uuid) values ('x')",
        "delete from published.fct_run_evaluation",
        "drop table published.fct_run_evaluation",
        "select lo_from_bytea(0, 'x')",
    ],
)
def test_the_reporter_can_write_nothing(baseline: Baseline, statement: str):
    _denied(baseline.as_role(NAMES.reporter), statement)


@pytest.mark.parametrize(
    "statement",
    [
        "delete from mlflow.runs",
        "update mlflow.runs set status = 'FAILED'",
        "insert into mlflow.experiments (name) values ('mine')",
        "truncate mlflow.metrics",
        "alter table mlflow.runs add column mine int",
        "drop table mlflow.params",
        "delete from dataset.predictions",
    ],
)
def test_the_transformer_cannot_modify_what_the_producer_wrote(baseline: Baseline, statement: str):
    _denied(baseline.as_role(NAMES.transformer), statement)


def test_the_transformer_built_and_owns_everything_dbt_made(baseline: Baseline):
    with baseline.admin.connect() as conn:
        owners = dict(
            conn.execute(
                "select n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) from pg_class as c"
                " join pg_namespace as n on n.oid = c.relnamespace where c.relkind in ('r', 'v')"
                " and n.nspname in ('dataset', 'wine', 'staging', 'marts', 'published', 'audit', 'mlflow')"
            ).fetchall()
        )
        conn.execute("create table mlflow.added_by_a_later_mlflow (x int)")  # the producer's
        conn.commit()
    producer = baseline.admin.user
    assert {owner for name, owner in owners.items() if name.startswith("mlflow.")} == {producer}
    assert {owners[f"dataset.{t}"] for t in ("predictions", "prediction_scores", *datasets.TABLES)} == {producer}
    assert {owners[f"wine.{t}"] for t in roles.seed_tables(PROJECT_DIR)} == {NAMES.transformer}
    dbt_made = {owner for name, owner in owners.items() if name.split(".")[0] in ("staging", "marts", "published")}
    assert dbt_made == {NAMES.transformer}
    with baseline.as_role(NAMES.transformer).connect() as conn:  # default privileges
        assert conn.execute("select count(*) from mlflow.added_by_a_later_mlflow").fetchone() == (0,)


def test_create_roles_is_idempotent_and_hands_over_what_dbt_built_before(baseline: Baseline, caplog):
    copy = baseline.clone("roles")
    with copy.connect(autocommit=True) as conn:  # as if dbt had run as the administrator
        conn.execute("alter schema marts owner to postgres")
        conn.execute("alter table marts.dim_runs owner to postgres")
        conn.execute("alter table wine.samples owner to postgres")
    caplog.set_level(logging.DEBUG)
    first = roles.create_roles(copy, CONFIG)
    second = roles.create_roles(copy, CONFIG)
    assert any("handed 2 existing" in line for line in first) and not any("handed" in line for line in second)
    assert all("exists" in line for line in second if line.startswith("role "))
    with copy.connect() as conn:
        owners = conn.execute(
            "select (select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'marts'),"
            " (select tableowner from pg_tables where schemaname = 'marts' and tablename = 'dim_runs'),"
            " (select tableowner from pg_tables where schemaname = 'wine' and tablename = 'samples')"
        ).fetchone()
    assert set(owners) == {NAMES.transformer}
    run_dbt(["build", "--select", "resource_type:seed", "dim_runs"], baseline.as_role(NAMES.transformer, copy.database))


def test_passwords_come_from_the_environment_only(baseline: Baseline, caplog, capsys):
    """A separate set of roles, so the shared ones keep their (absent) passwords."""
    names = roles.RoleNames.with_prefix(f"ml_eval_pwtest_{os.getpid()}")
    copy = baseline.admin.with_database(f"{baseline.database}_passwords")
    wh.ensure_database(copy, fresh=True)  # empty: dropped with the baseline's clones
    secret = "s3cret-'\"-ü-never-printed"
    caplog.set_level(logging.DEBUG)
    try:
        without = roles.create_roles(copy, CONFIG, names=names, environ={})
        environ = {"ML_EVAL_TRANSFORMER_PASSWORD": secret, "ML_EVAL_REPORTER_PASSWORD": secret}
        with_passwords = roles.create_roles(copy, CONFIG, names=names, environ=environ)
        with copy.connect() as conn:
            stored = dict(conn.execute(
                "select rolname, rolpassword from pg_authid where rolname in (%s, %s)",
                (names.transformer, names.reporter),
            ).fetchall())  # fmt: skip
    finally:
        with copy.connect(autocommit=True) as conn:  # their grants and default privileges, then them
            made = [r for r in (names.transformer, names.reporter, names.mlflow_reader)
                    if conn.execute("select 1 from pg_roles where rolname = %s", (r,)).fetchone()]  # fmt: skip
            if made:
                conn.execute(sql.SQL("drop owned by {}").format(sql.SQL(", ").join(map(sql.Identifier, made))))
                for role in made:
                    conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
    assert len(stored) == 2 and all(value.startswith("SCRAM-SHA-256$") for value in stored.values())
    said = "\n".join([*with_passwords, *without, caplog.text, *capsys.readouterr()])
    assert secret not in said and "s3cret" not in said
    assert [line for line in without if "(LOGIN)" in line] == [
        f"role {names.transformer} (LOGIN): created without a password "
        "(ML_EVAL_TRANSFORMER_PASSWORD is unset: for trust or peer authentication)",
        f"role {names.reporter} (LOGIN): created without a password "
        "(ML_EVAL_REPORTER_PASSWORD is unset: for trust or peer authentication)",
    ]
    assert [line for line in with_passwords if "(LOGIN)" in line] == [
        f"role {names.transformer} (LOGIN): exists, password set from ML_EVAL_TRANSFORMER_PASSWORD",
        f"role {names.reporter} (LOGIN): exists, password set from ML_EVAL_REPORTER_PASSWORD",
    ]


def test_the_roles_command_prints_what_it_did(baseline: Baseline, capsys, monkeypatch):
    from ml_eval import cli

    for key, value in baseline.admin.env().items():
        monkeypatch.setenv(key, value)
    assert cli.main(["roles", "--database", baseline.database, "--project-dir", str(PROJECT_DIR)]) == 0
    out = capsys.readouterr().out
    assert f"role {NAMES.reporter} (LOGIN): exists" in out and "schema published" in out
