"""The evaluation marts at a small scale: equal to pandas + scikit-learn, and incremental
builds equal to full refreshes.

One database goes through the life of a warehouse (20 runs x 178 Wine samples, made by
`ml_eval.bench.scale`): a first build, a re-run that finds nothing new, one more run, then a run
that finishes late, one deleted and one failed after they were built. After each
incremental build the marts are compared with a full refresh of the same data. No timing
is asserted: the bench (`ml_eval.bench.benchmark`) measures.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from conftest import CONFIG, drop_database
from ml_eval import warehouse as wh
from ml_eval.bench import benchmark as bench
from ml_eval.bench import scale
from ml_eval.dbt import dbt_arguments

TOLERANCE = 1e-9
SELECTION = bench.SELECTION
RUNS, SAMPLES = 20, 178
TABLES = (
    "marts.fct_predictions",
    "marts.fct_confusion_matrix",
    "marts.fct_class_metrics",
    "marts.fct_run_evaluation",
    "marts.fct_metric_history",
    "marts.rpt_model_leaderboard",
    "intermediate.int_run_class_scores_summarized",
    "marts.fct_roc_curve",
    "marts.fct_precision_recall_curve",
    "marts.fct_calibration_bins",
)
INCREMENTAL = ("fct_confusion_matrix", "fct_class_metrics", "fct_metric_history", "int_run_class_scores_summarized")


def _dbt(args: list[str], database: wh.Warehouse, target: Path) -> dict[str, int]:
    """`dbt <args>` in process; the rows each model's main statement wrote, by model name."""
    from dbt.cli.main import dbtRunner

    os.environ.update(database.env())
    outcome = dbtRunner().invoke([*dbt_arguments(args, CONFIG), "--target-path", str(target)])
    assert outcome.success, f"dbt {' '.join(args)} failed: {outcome.exception or outcome.result}"
    return {
        result.node.name: (result.adapter_response or {}).get("rows_affected", -1)
        for result in outcome.result.results
        if result.node.resource_type == "model"
    }


def _snapshot(database: wh.Warehouse) -> dict[str, list[tuple]]:
    """Every row of every evaluation table, in a stable order."""
    with database.connect() as conn:
        snapshot = {}
        for table in TABLES:
            n_columns = len(conn.execute(f"select * from {table} limit 0").description)
            order = ", ".join(str(i) for i in range(1, n_columns + 1))
            snapshot[table] = conn.execute(f"select * from {table} order by {order}").fetchall()
        return snapshot


def _differences(left: dict[str, list[tuple]], right: dict[str, list[tuple]]) -> list[str]:
    """Where two snapshots differ: row counts, or a value (floats within 1e-12)."""

    def same(a, b) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
        return a == b

    found = []
    for table in TABLES:
        if len(left[table]) != len(right[table]):
            found.append(f"{table}: {len(left[table])} rows against {len(right[table])}")
            continue
        for row_left, row_right in zip(left[table], right[table], strict=True):
            if len(row_left) != len(row_right) or not all(map(same, row_left, row_right)):
                found.append(f"{table}: {row_left} against {row_right}")
                break
    return found


def _runs_in(snapshot: dict[str, list[tuple]], table: str) -> set[str]:
    column = 1 if table in ("marts.fct_predictions", "marts.fct_metric_history") else 0
    return {row[column] for row in snapshot[table]}


@pytest.fixture(scope="module")
def life(warehouse: wh.Warehouse, tmp_path_factory):
    """The database through its builds, with a snapshot of the marts after each."""
    database = warehouse.with_database(warehouse.database + "_scale")
    wh.ensure_database(database, fresh=True)
    target = tmp_path_factory.mktemp("scale_target")
    state: dict[str, object] = {"database": database}
    try:
        _dbt(["seed"], database, target)
        made = scale.generate(database, CONFIG, RUNS, SAMPLES, threads=2)
        late = scale.generate(database, CONFIG, 1, SAMPLES, first_ordinal=RUNS, status="RUNNING")
        scale.analyze(database, CONFIG)
        runs = made.run_ids
        state.update(runs=runs, late=late.run_ids[0], deleted=runs[3], failed=runs[5])

        state["first_rows"] = _dbt(["run", "--select", SELECTION], database, target)
        state["first"] = _snapshot(database)
        state["rerun_rows"] = _dbt(["run", "--select", SELECTION], database, target)
        state["rerun"] = _snapshot(database)

        added = scale.generate(database, CONFIG, 1, SAMPLES, first_ordinal=RUNS + 1)
        state["added"] = added.run_ids[0]
        state["added_rows"] = _dbt(["run", "--select", SELECTION], database, target)
        state["after_one_run"] = _snapshot(database)
        _dbt(["run", "--full-refresh", "--select", SELECTION], database, target)
        state["after_one_run_full"] = _snapshot(database)

        client = scale.mlflow_client(database, CONFIG.mlflow_schema)
        client.set_terminated(state["late"], "FINISHED")
        client.delete_run(state["deleted"])
        client.set_terminated(state["failed"], "FAILED")
        _dbt(["run", "--select", SELECTION], database, target)
        state["after_changes"] = _snapshot(database)
        _dbt(["run", "--full-refresh", "--select", SELECTION], database, target)
        state["after_changes_full"] = _snapshot(database)
        state["pandas"] = bench.pandas_route(database, CONFIG)
        yield state
    finally:
        drop_database(database)  # and the MLflow artifact folder of its experiment


def test_the_marts_equal_pandas_and_scikit_learn_for_every_run(life):
    database, route = life["database"], life["pandas"]
    names = ", ".join(bench.METRICS)
    with database.connect() as conn:
        cursor = conn.execute(f"select run_uuid, {names} from marts.fct_run_evaluation")
        marts = {row[0]: dict(zip(bench.METRICS, row[1:], strict=True)) for row in cursor}
    assert set(marts) == set(route.metrics)
    assert len(marts) == RUNS  # + the added and the late run, - the deleted and the failed one
    wrong = {
        (run, key): (marts[run][key], expected)
        for run, metrics in route.metrics.items()
        for key, expected in metrics.items()
        if not (
            (expected is None and marts[run][key] is None)
            or (expected is not None and marts[run][key] is not None and abs(marts[run][key] - expected) <= TOLERANCE)
        )
    }
    assert not wrong, f"(marts, scikit-learn) differ: {dict(list(wrong.items())[:5])}"


def test_a_rerun_adds_nothing(life):
    assert all(life["first_rows"][name] > 0 for name in INCREMENTAL)
    assert {name: life["rerun_rows"][name] for name in INCREMENTAL} == dict.fromkeys(INCREMENTAL, 0)
    assert _differences(life["first"], life["rerun"]) == []


def test_one_more_run_is_added_and_equals_a_full_refresh(life):
    # that run's rows, nothing else: its 3 x 3 confusion matrix and its 3 scored classes
    assert life["added_rows"]["fct_confusion_matrix"] == 9
    assert life["added_rows"]["int_run_class_scores_summarized"] == 3
    assert len([row for row in life["after_one_run"]["marts.fct_predictions"] if row[1] == life["added"]]) == SAMPLES
    assert life["added"] in _runs_in(life["after_one_run"], "marts.fct_run_evaluation")
    assert _differences(life["after_one_run"], life["after_one_run_full"]) == []


def test_a_run_that_finishes_after_a_build_is_picked_up(life):
    late = life["late"]
    assert late not in _runs_in(life["first"], "marts.fct_predictions")
    for table in TABLES[:4] + TABLES[5:]:
        assert late in _runs_in(life["after_changes"], table), table


def test_deleted_and_failed_runs_leave_the_marts(life):
    for run in (life["deleted"], life["failed"]):
        assert run in _runs_in(life["first"], "marts.fct_run_evaluation")
        for table in TABLES:
            if table == "marts.fct_metric_history":  # every run's history stays, flagged
                flags = {row[7] for row in life["after_changes"][table] if row[1] == run}
                assert flags == {False}
            else:
                assert run not in _runs_in(life["after_changes"], table), table


def test_incremental_builds_equal_a_full_refresh(life):
    assert _differences(life["after_changes"], life["after_changes_full"]) == []
