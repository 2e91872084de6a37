"""The marts follow changes: a run whose predictions, probabilities, targets or MLflow metric
values change is evaluated again by the next build, and only that run; the published copies
follow it, with no row left that the producer's tables no longer hold.

Each case works on its own clone of the session's demo database (`built`: 8 runs tracked by
MLflow, their predictions written by `ml-eval train`), changes the tables as a user would
(an UPDATE or DELETE by hand, the loader, MlflowClient) and builds again with `dbt build`,
never with --full-refresh (but in the case that tests it). Metrics are compared with
scikit-learn's on the rows the tables hold after the change, to 1e-9.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import psycopg
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql

from conftest import CONFIG, clone_database, copy_project, drop_database, run_ml_eval
from ml_eval import changes, loader
from ml_eval import warehouse as wh
from ml_eval.bench import benchmark as bench
from ml_eval.dbt import dbt_arguments, run_dbt
from ml_eval.errors import UserError
from ml_eval.mlflow_names import logged_metric_keys
from ml_eval.producer import predictions as pred

pytestmark = pytest.mark.usefixtures("isolated_environment")

TOLERANCE = 1e-9
WINE = "UCI Wine"  # the demo's dataset (ml_eval.datasets.WINE_NAME)
# the relations built run by run: a run's rows there are rewritten only when its inputs change
RUN_KEYED = (
    "marts.fct_confusion_matrix",
    "marts.fct_class_metrics",
    "marts.fct_metric_history",
    "intermediate.int_run_class_scores_summarized",
    "intermediate.int_run_predictions_counted",
    "published.fct_predictions",
)

CHECKSUM = "select md5(string_agg(t::text, ',' order by t::text)) from published.fct_predictions as t"


@pytest.fixture
def clone(built: wh.Warehouse):
    """A copy of the demo database for one case, dropped afterwards. Every case's copy has the
    same name, so dbt's partial parsing (keyed by the connection) serves all but the first."""
    copy = clone_database(built, f"{built.database}_case")
    yield copy
    drop_database(copy)


# --- reading what the tables and marts hold ---------------------------------------------------


def _runs(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("select run_uuid from published.fct_run_evaluation order by run_uuid")]


def _run_of(conn: psycopg.Connection, name: str) -> str:
    return conn.execute("select run_uuid from mlflow.runs where name = %s", (name,)).fetchone()[0]


def _row_versions(conn: psycopg.Connection) -> dict[str, dict[str, set[tuple]]]:
    """relation -> run -> its rows' physical versions (ctid, xmin): a row rewritten gets new ones."""
    found: dict[str, dict[str, set[tuple]]] = {}
    for relation in RUN_KEYED:
        rows = conn.execute(f"select run_uuid, ctid::text, xmin::text from {relation}").fetchall()
        per_run: dict[str, set[tuple]] = {}
        for run_uuid, ctid, xmin in rows:
            per_run.setdefault(run_uuid, set()).add((ctid, xmin))
        found[relation] = per_run
    return found


def _rewritten(before: dict, after: dict) -> dict[str, set[str]]:
    """relation -> the runs whose rows differ (rewritten, added or gone) between two readings."""
    return {
        relation: {
            run for run in set(before[relation]) | set(after[relation])
            if before[relation].get(run) != after[relation].get(run)
        }
        for relation in RUN_KEYED
    }  # fmt: skip


def _sklearn(conn: psycopg.Connection, run_uuid: str) -> dict[str, float | None]:
    """The run's metrics as scikit-learn computes them from the rows the tables hold now
    (a class without a stored probability counts 0, as the marts and the bench do)."""
    rows = conn.execute(
        "select p.prediction_id, t.class, p.class from dataset.predictions as p"
        " join dataset.targets as t on t.sample_index = p.sample_index where p.run_uuid = %s"
        " order by p.prediction_id",
        (run_uuid,),
    ).fetchall()
    scores = conn.execute(
        "select s.prediction_id, s.class, s.probability from dataset.prediction_scores as s"
        " join dataset.predictions as p on p.prediction_id = s.prediction_id where p.run_uuid = %s",
        (run_uuid,),
    ).fetchall()
    classes = sorted({label for _, label, _ in scores})
    position = {prediction_id: i for i, (prediction_id, _, _) in enumerate(rows)}
    proba = np.zeros((len(rows), len(classes)))
    for prediction_id, label, probability in scores:
        proba[position[prediction_id], classes.index(label)] = probability
    y_true = np.array([r[1] for r in rows])
    y_pred = np.array([r[2] for r in rows])
    return bench.sklearn_metrics(y_true, y_pred, proba, classes)


def _published_metrics(conn: psycopg.Connection, run_uuid: str) -> dict[str, float | None]:
    columns = ", ".join(bench.METRICS)
    row = conn.execute(f"select {columns} from published.fct_run_evaluation where run_uuid = %s", (run_uuid,))
    return dict(zip(bench.METRICS, row.fetchone(), strict=True))


def _assert_metrics_equal(published: dict, expected: dict, skip: tuple[str, ...] = ()) -> None:
    for metric in bench.METRICS:
        if metric in skip:
            continue
        got, want = published[metric], expected[metric]
        if want is None:
            assert got is None, f"{metric}: {got} where scikit-learn gives none"
        else:
            assert got is not None and math.isclose(got, want, rel_tol=0, abs_tol=TOLERANCE), (metric, got, want)


def _assert_no_orphan(conn: psycopg.Connection) -> None:
    """Every published prediction and class metric names a run and prediction the producer's
    tables hold, and the published predictions are exactly the mart's."""
    orphans = conn.execute(
        "select count(*) from published.fct_predictions as published where not exists"
        " (select 1 from dataset.predictions as p"
        " where p.prediction_id = published.prediction_id and p.run_uuid = published.run_uuid)"
    ).fetchone()[0]
    assert orphans == 0
    foreign = conn.execute(
        "select count(*) from published.fct_class_metrics as published where not exists"
        " (select 1 from dataset.predictions as p where p.run_uuid = published.run_uuid)"
    ).fetchone()[0]
    assert foreign == 0
    difference = conn.execute(
        "select count(*) from ((select * from published.fct_predictions except all select * from marts.fct_predictions)"
        " union all (select * from marts.fct_predictions except all select * from published.fct_predictions)) as d"
    ).fetchone()[0]
    assert difference == 0
    for mart in ("fct_run_evaluation", "fct_class_metrics", "fct_confusion_matrix", "fct_metric_history"):
        same = conn.execute(
            sql.SQL(
                "select (select count(*) from (select * from {p} except all select * from {m}) as a)"
                " + (select count(*) from (select * from {m} except all select * from {p}) as b)"
            ).format(p=sql.Identifier("published", mart), m=sql.Identifier("marts", mart))
        ).fetchone()[0]
        assert same == 0, f"published.{mart} differs from marts.{mart}"


def _full_refresh_equals(database: wh.Warehouse) -> None:
    """The marts built incrementally equal a full refresh of the same data."""
    relations = ("marts.fct_run_evaluation", "marts.fct_class_metrics", "marts.fct_confusion_matrix",
                 "marts.fct_metric_history", "intermediate.int_run_class_scores_summarized",
                 "intermediate.int_run_predictions_counted", "marts.fct_roc_curve",
                 "marts.fct_precision_recall_curve", "marts.fct_calibration_bins")  # fmt: skip

    def read() -> dict[str, list[tuple]]:
        with database.connect() as conn:
            found = {}
            for relation in relations:
                n = len(conn.execute(f"select * from {relation} limit 0").description)
                order = ", ".join(str(i) for i in range(1, n + 1))
                found[relation] = conn.execute(f"select * from {relation} order by {order}").fetchall()
            return found

    def close(a, b) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
        return a == b

    incremental = read()
    run_dbt(["run", "--full-refresh"], database)
    full = read()
    for relation in relations:
        assert len(incremental[relation]) == len(full[relation]), relation
        for left, right in zip(incremental[relation], full[relation], strict=True):
            assert all(map(close, left, right)), (relation, left, right)


def _relog(database: wh.Warehouse, run_uuid: str, metrics: dict[str, float | None]) -> None:
    """What a training script does after correcting a run's predictions: log its evaluation
    metrics again through MLflow (a later step, so they are the latest), under the keys the
    marts compare (the first of each list in var mlflow_metric_names); a metric that is
    undefined is logged as NaN."""
    url = database.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    keys = logged_metric_keys(CONFIG)
    logged = {key: metrics[metric] for metric, key in keys.items() if metric in metrics and metric != "example_count"}
    logged["example_count"] = metrics["n_predictions"]
    for key, value in logged.items():
        client.log_metric(run_uuid, key, math.nan if value is None else value, step=1)


def _failed_build(database: wh.Warehouse) -> str:
    with pytest.raises(UserError) as failure:
        run_dbt(["build"], database)
    message = str(failure.value)
    assert "\n" not in message and message.startswith("dbt build failed: "), message
    return message


# --- the change tracking -------------------------------------------------------------------------


def test_every_statement_on_the_tracked_tables_bumps_its_runs_and_datasets(clone: wh.Warehouse):
    """Inserts, updates, deletes and truncates bump the versions of what they touched, and
    only that; the functions run as their owner with a fixed search_path."""
    with clone.connect() as conn:
        runs = _runs(conn)
        run, other = runs[0], runs[1]

        def versions() -> dict[str, int]:
            return dict(conn.execute("select run_uuid, version from dataset.run_versions").fetchall())

        def dataset_versions() -> dict[int, int]:
            return dict(conn.execute("select dataset_id, version from dataset.dataset_versions").fetchall())

        before = versions()
        assert set(runs) <= set(before)  # every run with predictions has a version
        conn.execute("update dataset.predictions set class = class where run_uuid = %s", (run,))
        after = versions()
        assert after[run] > before[run] and {k: v for k, v in after.items() if k != run} == {
            k: v for k, v in before.items() if k != run
        }
        before = after
        conn.execute(
            "delete from dataset.prediction_scores where prediction_id ="
            " (select min(prediction_id) from dataset.predictions where run_uuid = %s)",
            (other,),
        )
        after = versions()
        assert after[other] > before[other] and after[run] == before[run]
        before = after
        conn.execute("update dataset.run_datasets set dataset_id = dataset_id where run_uuid = %s", (run,))
        assert versions()[run] > before[run]
        before = versions()
        conn.execute("truncate dataset.prediction_scores")
        assert all(versions()[r] > before[r] for r in runs)

        wine = dataset_versions()
        (dataset_id,) = wine
        conn.execute(
            "update dataset.targets set class = class where sample_index ="
            " (select min(sample_index) from dataset.samples where dataset_id = %s)",
            (dataset_id,),
        )
        assert dataset_versions()[dataset_id] > wine[dataset_id]
        wine = dataset_versions()
        conn.execute("update dataset.classes set label = label where dataset_id = %s", (dataset_id,))
        assert dataset_versions()[dataset_id] > wine[dataset_id]
        wine = dataset_versions()
        conn.execute("update dataset.samples set features = features where dataset_id = %s", (dataset_id,))
        assert dataset_versions()[dataset_id] > wine[dataset_id]
        # one sequence: no two versions are equal
        all_versions = list(versions().values()) + list(dataset_versions().values())
        assert len(all_versions) == len(set(all_versions))

        functions = conn.execute(
            "select p.proname, p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) from pg_proc as p"
            " join pg_namespace as n on n.oid = p.pronamespace where n.nspname = 'dataset' and p.proname = any(%s)",
            (list(changes.FUNCTIONS),),
        ).fetchall()
        assert {f[0] for f in functions} == set(changes.FUNCTIONS)
        assert all(f[1] and f[2] == ["search_path=pg_catalog, pg_temp"] and f[3] == clone.user for f in functions)
        triggers = changes.installed_triggers(conn, "dataset")
        tracked = {"predictions", "prediction_scores", "run_datasets", "samples", "targets", "classes"}
        assert triggers == {(t, changes.trigger_name(e)) for t in tracked for e in changes.EVENTS}
        conn.rollback()


def _compiled(sql_text: str, database: wh.Warehouse) -> str:
    """`sql_text` compiled by dbt in the project (its macros rendered), as dbt compile --inline."""
    from dbt.cli.main import dbtRunner

    os.environ.update(database.env())
    outcome = dbtRunner().invoke(dbt_arguments(["compile", "--quiet", "--inline", sql_text], CONFIG))
    assert outcome.success, outcome.exception
    return outcome.result.results[0].node.compiled_code


def test_the_build_trusts_the_change_tracking_the_producer_installs_and_no_other(clone: wh.Warehouse):
    """The kept tables take a tracked table's versions for its rows (macros/change_tracking/):
    the dbt side knows the same triggers as ml_eval.changes, and checks them the same way."""
    tracking = json.loads(_compiled("{{ tojson(ml_eval.change_tracking()) }}", clone))
    assert tracking["run_versions"] == changes.RUN_VERSIONS
    assert tracking["dataset_versions"] == changes.DATASET_VERSIONS
    assert tracking["triggers"] == {
        changes.trigger_name(e): dict(
            zip(
                ("type", "new_table", "old_table"),
                (changes.TRIGGER_TYPES[e], *changes.TRANSITION_TABLES[e]),
                strict=True,
            )
        )
        for e in changes.EVENTS
    }
    assert tracking["functions"] == {t.table: t.function for t in changes.TRACKED}
    check = _compiled(
        "select relation.relname from pg_class as relation"
        " where relation.relnamespace = 'dataset'::regnamespace and relation.relkind = 'r'"
        " and ({{ ml_eval.is_change_tracked('relation', ml_eval.change_tracking()) }})",
        clone,
    )
    every = {t.table for t in changes.TRACKED}
    with clone.connect() as conn:
        assert {row[0] for row in conn.execute(check)} == every
        pairs = {(table, changes.trigger_name(event)) for table in every for event in changes.EVENTS}
        assert changes.installed_triggers(conn, "dataset") == pairs
        # a tracking trigger that fires on a condition, on a column list, or BEFORE is not one
        replaced = {
            "predictions": (
                "insert",
                "after insert on dataset.predictions for each statement when (pg_catalog.now() is null)",
            ),
            "samples": ("update", "after update of sample_index on dataset.samples for each statement"),
            "targets": ("delete", "before delete on dataset.targets for each statement"),
            # no transition table: the function would read whatever new_rows pg_temp holds
            "run_datasets": ("insert", "after insert on dataset.run_datasets for each statement"),
        }
        functions = {t.table: t.function for t in changes.TRACKED}
        for table, (event, trigger) in replaced.items():
            name = changes.trigger_name(event)
            conn.execute(f"drop trigger {name} on dataset.{table}")
            conn.execute(f"create trigger {name} {trigger} execute function dataset.{functions[table]}()")
        assert {row[0] for row in conn.execute(check)} == every - set(replaced)
        gone = {(table, changes.trigger_name(event)) for table, (event, _) in replaced.items()}
        assert changes.installed_triggers(conn, "dataset") == pairs - gone
        # a child's rows fire none of its parent's triggers: the build scans a table with children
        conn.execute("create table dataset.scores_archive () inherits (dataset.prediction_scores)")
        assert {row[0] for row in conn.execute(check)} == every - set(replaced) - {"prediction_scores"}
        # nor the triggers of a child, or a partition, when a statement names its parent (a
        # server may refuse a child with transition tables: then the case cannot arise)
        untrusted = set(replaced) | {"prediction_scores"}
        conn.execute("create table dataset.classes_all (like dataset.classes)")
        try:
            with conn.transaction():
                conn.execute("alter table dataset.classes inherit dataset.classes_all")
            untrusted.add("classes")
        except psycopg.errors.FeatureNotSupported:
            pass
        assert {row[0] for row in conn.execute(check)} == every - untrusted
        conn.rollback()


def test_the_producer_accepts_its_own_change_tracking_and_refuses_any_other_trigger(clone: wh.Warehouse):
    with clone.connect() as conn:
        # installed already: ensure_tables changes nothing (no DDL, no lock on the tables)
        assert changes.install(conn, "dataset") == [t.table for t in changes.TRACKED]
        pred.ensure_tables(conn, "dataset")
        locks = conn.execute(
            "select count(*) from pg_locks where pid = pg_backend_pid() and mode = 'AccessExclusiveLock'"
        ).fetchone()[0]
        assert locks == 0
        conn.rollback()
        # a trigger of another name, even calling the tracking's own function, is refused
        conn.execute(
            "create trigger extra after insert on dataset.predictions"
            " for each statement execute function dataset.ml_eval_bump_runs()"
        )
        with pytest.raises(UserError) as refused:
            pred.ensure_tables(conn, "dataset")
        assert str(refused.value) == (
            "table dataset.predictions has a trigger (extra): the producer writes into no table with one"
            " but its own change tracking's"
        )
        conn.rollback()
        # the tracking's own trigger name on a function of another schema is refused too
        conn.execute("create schema elsewhere")
        conn.execute(
            "create function elsewhere.ml_eval_bump_runs() returns trigger language plpgsql"
            " security definer as $$ begin return null; end $$"
        )
        conn.execute("drop trigger ml_eval_track_changes_insert on dataset.predictions")
        conn.execute(
            "create trigger ml_eval_track_changes_insert after insert on dataset.predictions"
            " for each statement execute function elsewhere.ml_eval_bump_runs()"
        )
        with pytest.raises(UserError, match=r"has a trigger \(ml_eval_track_changes_insert\)"):
            pred.ensure_tables(conn, "dataset")
        conn.rollback()


def test_a_disabled_tracking_trigger_stops_the_build_until_it_is_installed_again(clone: wh.Warehouse):
    """A change the triggers do not see would leave the marts stale: `ml-eval build` refuses a
    disabled one in one line; the producer installs it again, enabled ALWAYS, so it fires
    under session_replication_role = replica too (logical replication, pg_restore)."""
    with clone.connect() as conn:
        conn.execute("alter table dataset.prediction_scores disable trigger ml_eval_track_changes_update")
    refused = run_ml_eval("build", "--no-docs", env=clone.env(), check=False)
    line = refused.stderr.strip().splitlines()[-1]
    assert refused.returncode != 0
    assert line == (
        "ml-eval: error: the change tracking of dataset.prediction_scores.ml_eval_track_changes_update is missing"
        " or disabled (1 trigger(s)): the marts would not follow changes to those tables; run `ml-eval train` or"
        " `ml-eval load-dataset` as the tables' owner to install it again"
    ), refused.stderr
    with clone.connect() as conn:
        pred.ensure_tables(conn, "dataset")
        conn.commit()
        assert changes.untracked(conn, "dataset") == []
        run = _runs(conn)[0]
        before = conn.execute("select version from dataset.run_versions where run_uuid = %s", (run,)).fetchone()[0]
        conn.execute("set session_replication_role = replica")
        conn.execute(
            "update dataset.prediction_scores as s set probability = probability from dataset.predictions as p"
            " where p.prediction_id = s.prediction_id and p.run_uuid = %s",
            (run,),
        )
        after = conn.execute("select version from dataset.run_versions where run_uuid = %s", (run,)).fetchone()[0]
        conn.rollback()
    assert after > before


# --- the marts follow --------------------------------------------------------------------------


def test_corrected_predicted_labels_are_evaluated_again_and_republished(clone: wh.Warehouse):
    """An UPDATE by hand of some of one run's predicted labels: the next build evaluates that
    run again, equal to scikit-learn on the new rows, and rewrites no other run's rows."""
    with clone.connect() as conn:
        run = _run_of(conn, "knn-5")
        others = [r for r in _runs(conn) if r != run]
        before_metrics = {r: _published_metrics(conn, r) for r in others}
        before = _row_versions(conn)
        changed = conn.execute(
            "update dataset.predictions set class = class %% 3 + 1"
            " where run_uuid = %s and prediction_index %% 4 = 0 returning prediction_id",
            (run,),
        ).fetchall()
        conn.commit()
    assert changed
    # the metrics MLflow logged for the run no longer agree: the build says so, publishes nothing
    message = _failed_build(clone)
    assert message == "dbt build failed: fct_run_evaluation: assert_run_metrics_agree_with_mlflow (1 failing rows)"
    with clone.connect() as conn:
        expected = _sklearn(conn, run)
    _relog(clone, run, expected)
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        _assert_metrics_equal(_published_metrics(conn, run), expected)
        for other in others:  # equal but for the order a float sum was taken in
            _assert_metrics_equal(_published_metrics(conn, other), before_metrics[other])
        rewritten = _rewritten(before, _row_versions(conn))
        # the metric history is made of MLflow's values, which did not change: only the run's
        # input fingerprint did, so it is rewritten too; every other relation as well
        assert rewritten == {relation: {run} for relation in RUN_KEYED}, rewritten
        published = conn.execute(
            "select count(*) from published.fct_predictions where run_uuid = %s and prediction_id = any(%s)"
            " and predicted_class <> actual_class",
            (run, [c[0] for c in changed]),
        ).fetchone()[0]
        assert published > 0  # the published copy shows the new labels
        _assert_no_orphan(conn)
    # and a build with nothing new rewrites nothing
    with clone.connect() as conn:
        before = _row_versions(conn)
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        assert _rewritten(before, _row_versions(conn)) == {relation: set() for relation in RUN_KEYED}
    _full_refresh_equals(clone)


def test_half_of_a_runs_predictions_deleted_leave_no_orphan(clone: wh.Warehouse):
    with clone.connect() as conn:
        run = _run_of(conn, "logreg-c10")
        before = _row_versions(conn)
        held = conn.execute("select count(*) from dataset.predictions where run_uuid = %s", (run,)).fetchone()[0]
        deleted = conn.execute(
            "delete from dataset.predictions where run_uuid = %s and prediction_index %% 2 = 0", (run,)
        ).rowcount
        conn.commit()
    assert 0 < deleted < held
    with clone.connect() as conn:
        expected = _sklearn(conn, run)
    _relog(clone, run, expected)
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        _assert_metrics_equal(_published_metrics(conn, run), expected)
        published = conn.execute("select count(*) from published.fct_predictions where run_uuid = %s", (run,))
        assert published.fetchone()[0] == held - deleted
        counted = conn.execute("select n_predictions from published.dim_runs where run_uuid = %s", (run,))
        assert counted.fetchone()[0] == held - deleted
        assert _rewritten(before, _row_versions(conn)) == {relation: {run} for relation in RUN_KEYED}
        _assert_no_orphan(conn)


def test_changed_and_deleted_probabilities_are_evaluated_again(clone: wh.Warehouse):
    """Probabilities rotated between the classes (each prediction's still sum to one): log
    loss and ROC AUC follow scikit-learn. Then every score of the run deleted: the run has no
    probabilities, so its ROC AUC is null and its log loss scores every truth at eps, as the
    marts define it; its published predictions carry no probability."""
    with clone.connect() as conn:
        run = _run_of(conn, "gboost-100x0.1-depth3")
        before = _row_versions(conn)
        # each class takes the probability of the next one (read from the rows before the update)
        conn.execute(
            "update dataset.prediction_scores as s set probability = o.probability"
            " from dataset.prediction_scores as o, dataset.predictions as p"
            " where o.prediction_id = s.prediction_id and o.class = s.class %% 3 + 1"
            " and p.prediction_id = s.prediction_id and p.run_uuid = %s",
            (run,),
        )
        conn.commit()
        expected = _sklearn(conn, run)
    _relog(clone, run, expected)
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        _assert_metrics_equal(_published_metrics(conn, run), expected)
        assert _rewritten(before, _row_versions(conn)) == {relation: {run} for relation in RUN_KEYED}
        _assert_no_orphan(conn)
        conn.execute(
            "delete from dataset.prediction_scores as s using dataset.predictions as p"
            " where p.prediction_id = s.prediction_id and p.run_uuid = %s",
            (run,),
        )
        conn.commit()
    _relog(clone, run, {**expected, "roc_auc": None, "log_loss": None})
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        published = _published_metrics(conn, run)
        assert published["roc_auc"] is None
        assert published["log_loss"] is None  # no probability stored: nothing to score (README)
        _assert_metrics_equal(published, expected, skip=("roc_auc", "log_loss"))
        probabilities = conn.execute(
            "select count(*) from published.fct_predictions where run_uuid = %s"
            " and (predicted_class_probability is not null or actual_class_probability is not null)",
            (run,),
        ).fetchone()[0]
        assert probabilities == 0
        _assert_no_orphan(conn)


def test_after_a_failed_build_with_bad_labels_the_fixed_reload_builds(clone: wh.Warehouse):
    """Labels outside the dataset's classes written by hand fail the build by name; the run's
    predictions then reloaded right (the loader, --replace) build and publish without a full
    refresh, equal to scikit-learn."""
    with clone.connect() as conn:
        run = _run_of(conn, "svm-rbf-c1")
        rows = conn.execute(
            "select s.sample_key, p.class, p.prediction_id from dataset.predictions as p"
            " join dataset.samples as s on s.sample_index = p.sample_index where p.run_uuid = %s"
            " order by p.prediction_index",
            (run,),
        ).fetchall()
        scores = dict.fromkeys((r[2] for r in rows), None)
        for prediction_id, label, probability in conn.execute(
            "select s.prediction_id, s.class, s.probability from dataset.prediction_scores as s"
            " join dataset.predictions as p on p.prediction_id = s.prediction_id where p.run_uuid = %s",
            (run,),
        ):
            scores[prediction_id] = {**(scores[prediction_id] or {}), label: probability}
        conn.execute("update dataset.predictions set class = 7 where run_uuid = %s and prediction_index < 5", (run,))
        conn.commit()
        published = conn.execute(
            "select md5(string_agg(t::text, ',' order by t::text)) from published.fct_predictions t"
        )
        published = published.fetchone()[0]
    message = _failed_build(clone)
    assert "assert_predicted_classes_are_target_classes (5 failing rows)" in message, message
    with clone.connect() as conn:
        unchanged = conn.execute(
            "select md5(string_agg(t::text, ',' order by t::text)) from published.fct_predictions t"
        )
        assert unchanged.fetchone()[0] == published
        # the fix: the run's predictions reloaded with one label corrected the other way
        keys = [r[0] for r in rows]
        predicted = [str(r[1]) for r in rows]
        predicted[0] = "1" if predicted[0] != "1" else "2"
        labels = ["1", "2", "3"]
        proba = [[scores[r[2]][int(label)] for label in labels] for r in rows]
        loader.load_predictions(
            conn,
            dataset_schema=CONFIG.dataset_schema,
            mlflow_schema=CONFIG.mlflow_schema,
            run_uuid=run,
            dataset=WINE,
            sample_keys=keys,
            predicted=predicted,
            probabilities=proba,
            labels=labels,
            replace=True,
        )
        conn.commit()
        expected = _sklearn(conn, run)
    _relog(clone, run, expected)
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        _assert_metrics_equal(_published_metrics(conn, run), expected)
        _assert_no_orphan(conn)


def test_a_corrected_target_re_evaluates_every_run_of_its_dataset(clone: wh.Warehouse):
    """One true class corrected in `targets`: every run on that dataset is evaluated again
    (and republished), its predictions' true class the new one everywhere."""
    with clone.connect() as conn:
        runs = _runs(conn)
        sample = conn.execute(
            "update dataset.targets set class = class %% 3 + 1 where sample_index ="
            " (select min(p.sample_index) from dataset.predictions as p where p.run_uuid = %s)"
            " returning sample_index, class",
            (runs[0],),
        ).fetchone()
        conn.commit()
        expected = {run: _sklearn(conn, run) for run in runs}
    for run in runs:
        _relog(clone, run, expected[run])
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        for run in runs:
            _assert_metrics_equal(_published_metrics(conn, run), expected[run])
        seen = conn.execute(
            "select distinct actual_class from published.fct_predictions where sample_index = %s", (sample[0],)
        ).fetchall()
        assert seen == [(sample[1],)]
        _assert_no_orphan(conn)


def test_a_corrected_wine_seed_file_reaches_the_marts_with_ml_eval_build(clone: wh.Warehouse, tmp_path):
    """The demo's dataset comes from its seed files: one label corrected in targets.csv is
    registered again by `ml-eval build` (run as the Dataset Database's owner) and every Wine
    run is evaluated on it; a plain rebuild after that changes nothing more."""
    project = copy_project(tmp_path / "project")
    targets = project / "seeds" / "dataset" / "targets.csv"
    with clone.connect() as conn:
        runs = _runs(conn)
        sample = conn.execute(
            "select min(p.sample_index) from dataset.predictions as p where p.run_uuid = %s", (runs[0],)
        ).fetchone()[0]
        # what scikit-learn gives on the corrected label: the change applied, read, rolled back
        with conn.transaction(force_rollback=True):
            new_class = conn.execute(
                "update dataset.targets set class = class %% 3 + 1 where sample_index = %s returning class",
                (sample,),
            ).fetchone()[0]
            expected = {run: _sklearn(conn, run) for run in runs}
    lines = targets.read_text().splitlines()
    header = lines[0].split(",")
    index_at, class_at = header.index("sample_index"), header.index("class")
    for position, line in enumerate(lines[1:], start=1):
        cells = line.split(",")
        if cells[index_at] == str(sample):
            cells[class_at] = str(new_class)
            lines[position] = ",".join(cells)
    targets.write_text("\n".join(lines) + "\n")
    for run in runs:
        _relog(clone, run, expected[run])
    built = run_ml_eval("build", "--no-docs", env={**clone.env(), "ML_EVAL_PROJECT_DIR": str(project)})
    assert "dataset 'UCI Wine': replaced from the seed files (178 samples)" in built.stdout, built.stdout[-2000:]
    with clone.connect() as conn:
        for run in runs:
            _assert_metrics_equal(_published_metrics(conn, run), expected[run])
        seen = conn.execute(
            "select distinct actual_class from published.fct_predictions where sample_index = %s", (sample,)
        ).fetchall()
        assert seen == [(new_class,)]
        _assert_no_orphan(conn)
    again = run_ml_eval("build", "--no-docs", env={**clone.env(), "ML_EVAL_PROJECT_DIR": str(project)})
    assert "from the seed files" not in again.stdout


def test_a_changed_mlflow_metric_value_reaches_the_history_and_the_logged_columns(clone: wh.Warehouse):
    """A value of a run's metric history changed in place by an administrator (same number
    of values: counting them would not see it), then a new value logged through MLflow."""
    with clone.connect() as conn:
        run, key, step = conn.execute(
            "select run_uuid, key, step from mlflow.metrics where key = 'train_loss' order by run_uuid, step limit 1"
        ).fetchone()
        before = _row_versions(conn)
        conn.execute(
            "update mlflow.metrics set value = 12.5 where run_uuid = %s and key = %s and step = %s", (run, key, step)
        )
        conn.commit()
    run_dbt(["build"], clone)
    with clone.connect() as conn:
        values = conn.execute(
            "select metric_value from published.fct_metric_history"
            " where run_uuid = %s and metric_key = %s and step = %s",
            (run, key, step),
        ).fetchall()
        assert values == [(12.5,)]
        rewritten = _rewritten(before, _row_versions(conn))
        assert rewritten["marts.fct_metric_history"] == {run}
        assert all(runs <= {run} for runs in rewritten.values())
        _assert_no_orphan(conn)
        evaluated = _runs(conn)[0]
        accuracy = conn.execute(
            "select accuracy from published.fct_run_evaluation where run_uuid = %s", (evaluated,)
        ).fetchone()[0]
    # MLflow's latest value of the compared accuracy becomes a wrong one: the marts show it,
    # and the build fails on the disagreement, publishing nothing
    url = clone.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    client.log_metric(evaluated, "accuracy_score", accuracy / 2, step=1000)
    message = _failed_build(clone)
    assert "assert_run_metrics_agree_with_mlflow (1 failing rows)" in message, message
    with clone.connect() as conn:
        logged = conn.execute(
            "select logged_accuracy, agrees_with_mlflow from marts.fct_run_evaluation where run_uuid = %s",
            (evaluated,),
        ).fetchone()
        assert logged == (accuracy / 2, False)
        history = conn.execute(
            "select metric_value, is_latest from marts.fct_metric_history"
            " where run_uuid = %s and metric_key = 'accuracy_score' order by step",
            (evaluated,),
        ).fetchall()
        assert history[-1] == (accuracy / 2, True) and not any(latest for _, latest in history[:-1])


def test_build_full_refresh_rebuilds_and_publishes_whole(clone: wh.Warehouse):
    with clone.connect() as conn:
        run = _run_of(conn, "knn-5")
        conn.execute("update dataset.predictions set class = 1 where run_uuid = %s and prediction_index < 3", (run,))
        conn.commit()
        before = _row_versions(conn)
        expected = _sklearn(conn, run)
    _relog(clone, run, expected)
    done = run_ml_eval("build", "--full-refresh", "--no-docs", env={**clone.env()})
    assert "(whole: " in done.stdout and "by run:" not in done.stdout.split("published ")[-1], done.stdout[-2000:]
    with clone.connect() as conn:
        after = _row_versions(conn)
        # every run rebuilt: no row kept from before
        for relation in RUN_KEYED:
            for run_uuid, rows in after[relation].items():
                assert not rows & before[relation].get(run_uuid, set()), relation
        _assert_metrics_equal(_published_metrics(conn, run), expected)
        _assert_no_orphan(conn)
        state = conn.execute(
            "select built_relation, count(*) from audit.ml_eval_run_fingerprints group by 1 order by 1"
        ).fetchall()
        n_runs = len(_runs(conn))
        assert dict(state)["published.fct_predictions"] == n_runs
        assert dict(state)["marts.fct_confusion_matrix"] == n_runs


# --- views kept when unchanged (stable_view) -----------------------------------------------------

VIEWS = (
    "select n.nspname || '.' || c.relname, c.oid from pg_class as c"
    " join pg_namespace as n on n.oid = c.relnamespace"
    " where c.relkind = 'v' and n.nspname in ('staging', 'intermediate', 'marts')"
)


def test_views_are_kept_unless_their_definition_or_comments_changed(clone: wh.Warehouse):
    """A run leaves a view in place (same oid) when it would come out the same; a view replaced
    by hand with another definition, or whose documented comment was changed, is made again;
    --full-refresh makes it again regardless."""
    selection = ["--select", "path:models/staging", "fct_roc_curve"]
    with clone.connect() as conn:
        before = dict(conn.execute(VIEWS).fetchall())
    assert {"staging.stg_mlflow__params", "marts.fct_roc_curve"} <= set(before)
    run_dbt(["run", *selection], clone)
    with clone.connect() as conn:
        assert dict(conn.execute(VIEWS).fetchall()) == before  # every view kept, the selected ones too
        (definition,) = conn.execute("select pg_get_viewdef('staging.stg_mlflow__params'::regclass)").fetchone()
        conn.execute(
            "create or replace view staging.stg_mlflow__params as select * from ("
            + definition.rstrip().rstrip(";")
            + ") as params where false"
        )
        conn.execute("comment on column marts.fct_roc_curve.run_uuid is 'tampered'")
        conn.commit()
        assert conn.execute("select count(*) from staging.stg_mlflow__params").fetchone() == (0,)
    run_dbt(["run", *selection], clone)
    with clone.connect() as conn:
        after = dict(conn.execute(VIEWS).fetchall())
        remade = {name for name in before if after.get(name) != before[name]}
        assert remade == {"staging.stg_mlflow__params", "marts.fct_roc_curve"}, remade
        assert conn.execute("select count(*) > 0 from staging.stg_mlflow__params").fetchone() == (True,)
        (comment,) = conn.execute(
            "select col_description(attrelid, attnum) from pg_attribute"
            " where attrelid = 'marts.fct_roc_curve'::regclass and attname = 'run_uuid'"
        ).fetchone()
        assert comment and comment != "tampered", comment
    run_dbt(["run", "--full-refresh", "--select", "stg_mlflow__runs"], clone)
    with clone.connect() as conn:
        again = dict(conn.execute(VIEWS).fetchall())
        assert again["staging.stg_mlflow__runs"] != after["staging.stg_mlflow__runs"]
        assert set(again) == set(before)


# --- tables kept when what they read did not change (macros/materializations/table.sql) ------

TABLES = (
    "select n.nspname || '.' || c.relname, c.oid from pg_class as c"
    " join pg_namespace as n on n.oid = c.relnamespace"
    " where c.relkind = 'r' and n.nspname in ('intermediate', 'marts')"
)
# they read the clock (rpt_quality_gates), or a table that does (rpt_model_health)
ALWAYS_BUILT = {"marts.rpt_quality_gates", "marts.rpt_model_health"}


def _tables_remade(database: wh.Warehouse, args: list[str] | None = None) -> tuple[set[str], dict[str, int]]:
    """`dbt run` (with `args`): the tables it made again (their oid changed), and every table's oid after."""
    with database.connect() as conn:
        before = dict(conn.execute(TABLES).fetchall())
    run_dbt(["run", *(args or [])], database)
    with database.connect() as conn:
        after = dict(conn.execute(TABLES).fetchall())
    assert set(after) == set(before)
    return {name for name in before if after[name] != before[name]}, after


def test_tables_are_kept_unless_what_they_read_changed(clone: wh.Warehouse):
    """A run leaves a table in place (same oid) when neither its SQL and config nor any row or
    definition of what it reads changed; a run renamed in MLflow, a mart row or comment changed
    by hand and a var that changes a model's SQL each have the tables concerned made again,
    with the right content; a table that reads the clock is made on every run."""
    _tables_remade(clone)  # the copy's database has another name, in the compiled SQL: made once
    remade, _ = _tables_remade(clone)
    assert remade == ALWAYS_BUILT, remade

    with clone.connect() as conn:
        run = _run_of(conn, "knn-5")
        accuracy = conn.execute("select accuracy from marts.fct_run_evaluation where run_uuid = %s", (run,)).fetchone()
    url = clone.sqlalchemy_url("mlflow")
    MlflowClient(url, url).set_tag(run, "mlflow.runName", "knn-5 renamed")
    remade, _ = _tables_remade(clone)
    assert {"marts.dim_runs", "marts.fct_run_evaluation", "marts.rpt_model_leaderboard"} <= remade, remade
    assert "marts.dim_model_versions" not in remade, remade
    with clone.connect() as conn:
        assert conn.execute("select run_name from marts.dim_runs where run_uuid = %s", (run,)).fetchone() == (
            "knn-5 renamed",
        )

    with clone.connect() as conn:
        conn.execute("update marts.fct_run_evaluation set accuracy = 0 where run_uuid = %s", (run,))
        conn.execute("comment on column marts.dim_model_versions.model_version is 'tampered'")
        conn.commit()
    remade, _ = _tables_remade(clone)
    assert {"marts.fct_run_evaluation", "marts.dim_model_versions"} <= remade, remade
    assert "marts.dim_runs" not in remade, remade
    with clone.connect() as conn:
        assert conn.execute("select accuracy from marts.fct_run_evaluation where run_uuid = %s", (run,)).fetchone() == (
            accuracy
        )
        (comment,) = conn.execute(
            "select col_description(attrelid, attnum) from pg_attribute"
            " where attrelid = 'marts.dim_model_versions'::regclass and attname = 'model_version'"
        ).fetchone()
        assert comment and comment != "tampered", comment

    remade, _ = _tables_remade(clone, ["--vars", '{"model_family_tags": ["estimator_name", "model_family"]}'])
    assert {"marts.dim_runs", "marts.fct_run_evaluation"} <= remade, remade
    remade, _ = _tables_remade(clone)
    assert {"marts.dim_runs", "marts.fct_run_evaluation"} <= remade, remade
    remade, _ = _tables_remade(clone)
    assert remade == ALWAYS_BUILT, remade
    remade, _ = _tables_remade(clone, ["--full-refresh", "--select", "dim_model_versions"])
    assert remade == {"marts.dim_model_versions"}, remade


# each model reads something whose content can change with no row version changing, or that
# PostgreSQL does not record as read: it must be built on every run
ALWAYS_BUILT_PROBES = {
    "probe_clock": "select now() as built_at",
    "probe_clock_literal": "select 'now'::timestamptz as built_at",
    "probe_clock_words": "select 'today 12:00'::timestamp as noon",
    "probe_volatile": "select random() as drawn",
    "probe_sequence": "select last_value from probe.counter",
    "probe_sequence_call": "select nextval('probe.counter') as drawn",
    "probe_catalog": "select count(*) as n from pg_class",
    "probe_function": "select probe.rows_of_t() as n",
    "probe_operator": "select 1 operator(probe.###) 2 as n",
    "probe_writes": "with touched as (update probe.t set a = a returning a) select a from touched",
    # what reads tables or catalogs by name, with no dependency PostgreSQL records
    "probe_information_schema": "select information_schema._pg_index_position(0::oid, 1::smallint) as p",
    "probe_format_type": "select format_type('probe.t'::regclass::oid, null) as type_name",
    "probe_regclass_cast": "select ('probe.t'::text)::regclass::oid::bigint as o",
    # a clock literal cast at run time, in a view under the SQL
    "probe_clock_view": "select t from probe.frozen_now",
}
KEPT_PROBES = {
    "probe_plain": "select a from probe.t",
    "probe_enum": "select e from probe.te",
    # the dollar quote the first version of the check used: the SQL cannot end it
    "probe_quote": "select '$ml_eval_table_reads$; create table probe.pwned (); $x$' as text_value",
}


def test_tables_that_read_what_no_row_version_shows_are_built_every_run(clone: wh.Warehouse, tmp_path):
    """The clock (a call, a literal), random(), a sequence, the catalogs, a function or an
    operator of the database's own (which may read any table), and a query PostgreSQL keeps
    only as CREATE TABLE AS: each such table model is built on every run; a plain one is kept,
    and SQL that holds the materialization's dollar quote runs nothing of its own."""
    project = copy_project(tmp_path / "project")
    (project / "models" / "probe").mkdir()
    for name, query in {**ALWAYS_BUILT_PROBES, **KEPT_PROBES}.items():
        (project / "models" / "probe" / f"{name}.sql").write_text(
            "{{ config(materialized='table', schema='probe_marts') }}\n" + query + "\n"
        )
    # descriptions that hold dollar quotes, quotes and format directives: written as they are
    (project / "models" / "probe" / "_probe.yml").write_text(
        'version: 2\nmodels:\n  - name: probe_quote\n    description: "a $ml_eval_x$ it\'s 100% %s"\n'
        "    columns:\n      - name: text_value\n        description: \"$$ %I %L '' done\"\n"
    )
    with clone.connect() as conn:
        conn.execute("create schema probe")
        conn.execute("create table probe.t (a integer)")
        conn.execute("insert into probe.t values (1), (2)")
        conn.execute("create sequence probe.counter")
        conn.execute(
            "create function probe.rows_of_t() returns bigint language sql stable as 'select count(*) from probe.t'"
        )
        conn.execute("create function probe.plus(integer, integer) returns integer language sql as 'select $1 + $2'")
        conn.execute("create operator probe.### (leftarg = integer, rightarg = integer, function = probe.plus)")
        conn.execute("create view probe.frozen_now as select ('now'::text)::timestamptz as t")
        conn.execute("create type probe.e as enum ('a', 'b')")
        conn.execute("create table probe.te as select 'a'::probe.e as e")
        conn.commit()
    probes = (
        "select c.relname, c.oid from pg_class as c"
        " where c.relnamespace = to_regnamespace('probe_marts') and c.relkind = 'r'"
    )
    selection = ["run", "--select", "path:models/probe", "--exclude", "probe_writes"]
    run_dbt(["run", "--select", "path:models/probe"], clone, project_dir=project)
    run_dbt(selection, clone, project_dir=project)  # probe_writes rewrote probe.t: probe_plain is built again
    with clone.connect() as conn:
        before = dict(conn.execute(probes).fetchall())
    assert set(before) == set(ALWAYS_BUILT_PROBES) | set(KEPT_PROBES)
    run_dbt(selection, clone, project_dir=project)
    with clone.connect() as conn:
        after = dict(conn.execute(probes).fetchall())
        assert conn.execute("select to_regclass('probe.pwned')").fetchone() == (None,)
        assert conn.execute(
            "select obj_description('probe_marts.probe_quote'::regclass, 'pg_class'),"
            " col_description('probe_marts.probe_quote'::regclass, 1)"
        ).fetchone() == ("a $ml_eval_x$ it's 100% %s", "$$ %I %L '' done")
    remade = {name for name in before if after[name] != before[name]}
    assert remade == set(ALWAYS_BUILT_PROBES) - {"probe_writes"}, remade
    # an enum's label renamed in place changes what the table prints: it is built again
    with clone.connect() as conn:
        conn.execute("alter type probe.e rename value 'a' to 'z'")
        conn.commit()
    run_dbt(selection, clone, project_dir=project)
    with clone.connect() as conn:
        again = dict(conn.execute(probes).fetchall())
        assert conn.execute("select e::text from probe_marts.probe_enum").fetchall() == [("z",)]
    assert again["probe_enum"] != after["probe_enum"] and again["probe_plain"] == after["probe_plain"]
