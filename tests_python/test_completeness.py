"""Completeness: what is missing from the input is named by a test, never silently dropped.

Each case works on its own clone of the session's demo database (`built`): a run whose
probabilities lack a class, a prediction whose sample has no target (both fail the build by
name and publish nothing), a run evaluated on a handful of samples (marked partial, ranked
after the full runs), and the marts' agreement on the set of runs when MLflow records a run
after the runs of a build were fixed.
"""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from psycopg import sql

from conftest import CONFIG, clone_database
from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt
from ml_eval.errors import UserError
from ml_eval.producer import predictions as pred

pytestmark = pytest.mark.usefixtures("isolated_environment")

EXPERIMENT_NAME = "wine-classification"  # the demo's experiment (ml-eval train)


@pytest.fixture
def clone(built: wh.Warehouse):
    """A copy of the demo database for one case, dropped afterwards. Every case's copy has the
    same name, so dbt's partial parsing (keyed by the connection) serves all but the first."""
    copy = clone_database(built, f"{built.database}_case")
    yield copy
    with built.connect("postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(copy.database)))


def _checksum(database: wh.Warehouse, table: str) -> str:
    with database.connect() as conn:
        return conn.execute(
            sql.SQL("select md5(string_agg(t::text, ',' order by t::text)) from {} as t").format(
                sql.Identifier("published", table)
            )
        ).fetchone()[0]


def _run_uuid(database: wh.Warehouse, run_name: str) -> str:
    with database.connect() as conn:
        return conn.execute("select run_uuid from mlflow.runs where name = %s", (run_name,)).fetchone()[0]


def _failed_build(database: wh.Warehouse) -> str:
    with pytest.raises(UserError) as failure:
        run_dbt(["build"], database)
    message = str(failure.value)
    assert "\n" not in message and message.startswith("dbt build failed: "), message
    return message


def test_a_run_missing_a_class_of_probabilities_fails_the_build_by_name(clone: wh.Warehouse):
    """A careless (sparse) loader keeps only the non-zero probabilities of a kNN run: each
    prediction's probabilities still sum to 1, but its zero-probability classes are gone."""
    published = _checksum(clone, "fct_run_evaluation")
    knn = _run_uuid(clone, "knn-5")
    with clone.connect() as conn:
        deleted = conn.execute(
            "delete from dataset.prediction_scores as s using dataset.predictions as p"
            " where s.prediction_id = p.prediction_id and p.run_uuid = %s and s.probability = 0"
            " returning s.prediction_id, s.class",
            (knn,),
        ).fetchall()
        conn.commit()
    assert deleted  # k = 5 neighbours of 3 classes: many predictions have a zero class
    message = _failed_build(clone)
    assert f"assert_scored_predictions_cover_their_run_classes ({len(deleted)} failing rows)" in message, message
    assert "assert_prediction_probabilities_sum_to_one" not in message  # the sums were fine
    with clone.connect() as conn:
        named = conn.execute(
            "select run_uuid, prediction_id, missing_class from audit.assert_scored_predictions_cover_their_run_classes"
        ).fetchall()
    assert sorted(named) == sorted((knn, prediction_id, label) for prediction_id, label in deleted)
    assert _checksum(clone, "fct_run_evaluation") == published


def test_a_prediction_of_a_sample_without_a_target_fails_the_build_by_name(clone: wh.Warehouse):
    """It would fall out of every mart's join to the targets: 55 predictions evaluated as 54."""
    published = _checksum(clone, "fct_run_evaluation")
    run_uuid = _run_uuid(clone, "logreg-c10")
    with clone.connect() as conn:
        assert conn.execute("select count(*) from dataset.targets where sample_index = 9999").fetchone()[0] == 0
        with conn.transaction():  # a whole prediction, probabilities summing to 1
            pred.write_batch(conn, run_uuid, [9999], [1], [[0.5, 0.3, 0.2]], [1, 2, 3], schema=CONFIG.dataset_schema)
        conn.commit()
    message = _failed_build(clone)
    assert "predictions.sample_index: relationships (1 failing rows)" in message, message
    assert "assert_scored_predictions_cover_their_run_classes" not in message  # its probabilities are whole
    with clone.connect() as conn:
        missing = conn.execute("select from_field from audit.predictions_sample_index_has_a_target").fetchall()
    assert missing == [(9999,)]
    assert _checksum(clone, "fct_run_evaluation") == published


def test_a_run_evaluated_on_three_samples_is_partial_and_ranks_after_the_full_runs(clone: wh.Warehouse):
    """Three correct predictions of the champion's run, copied into a new finished run:
    perfect on them, it must not rank among runs evaluated on the whole test split."""
    url = clone.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    experiment_id = client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id
    with clone.connect() as conn:
        champion = conn.execute("select run_uuid from published.rpt_model_leaderboard where is_champion").fetchone()[0]
        rows = conn.execute(
            "select p.prediction_id, p.sample_index, p.class from dataset.predictions as p"
            " join dataset.targets as t on t.sample_index = p.sample_index"
            " where p.run_uuid = %s and p.class = t.class order by p.prediction_id limit 3",
            (champion,),
        ).fetchall()
        scores = {
            (prediction_id, label): probability
            for prediction_id, label, probability in conn.execute(
                "select prediction_id, class, probability from dataset.prediction_scores where prediction_id = any(%s)",
                ([r[0] for r in rows],),
            )
        }
        classes = sorted({label for _, label in scores})
        proba = [[scores[(r[0], label)] for label in classes] for r in rows]
        partial = client.create_run(experiment_id, run_name="three samples").info.run_id
        with conn.transaction():
            pred.write_batch(
                conn, partial, [r[1] for r in rows], [r[2] for r in rows], proba, classes, schema=CONFIG.dataset_schema
            )
        conn.commit()
    client.set_terminated(partial, "FINISHED")

    run_dbt(["build"], clone)

    # coverage, independently: the run's predictions over the most any evaluated run of the
    # experiment holds, the runs read from MLflow's client and the counts from the source
    finished = [
        run.info.run_id
        for run in client.search_runs([experiment_id], max_results=1000)
        if run.info.status == "FINISHED" and run.info.lifecycle_stage == "active"
    ]
    with clone.connect() as conn:
        counts = dict(
            conn.execute(
                "select run_uuid, count(*) from dataset.predictions where run_uuid = any(%s) group by run_uuid",
                (finished,),
            ).fetchall()
        )
        board = {
            row[0]: row[1:]
            for row in conn.execute(
                "select run_uuid, coverage, is_partial_evaluation, experiment_rank, accuracy, is_champion"
                " from published.rpt_model_leaderboard where experiment_name = %s",
                (EXPERIMENT_NAME,),
            )
        }
        evaluation = conn.execute(
            "select n_predictions, n_evaluation_samples, coverage from published.fct_run_evaluation"
            " where run_uuid = %s",
            (partial,),
        ).fetchone()
    expected = counts[partial] / max(counts.values())
    assert counts[partial] == 3 and max(counts.values()) == 54
    assert evaluation[:2] == (3, 54) and abs(evaluation[2] - expected) <= 1e-12
    coverage, is_partial, rank, accuracy, is_champion = board[partial]
    assert abs(coverage - expected) <= 1e-12 and is_partial and accuracy == 1.0 and not is_champion
    full = {run: values for run, values in board.items() if run != partial}
    assert full and all(not values[1] and abs(values[0] - 1.0) <= 1e-12 for values in full.values())
    assert rank > max(values[2] for values in full.values())  # after every full run
    assert board[champion][2] == 1 and board[champion][4]  # the champion keeps its place and flag


def test_the_marts_agree_on_the_set_of_runs_even_when_a_run_lands_mid_build(clone: wh.Warehouse):
    """The agreement test passes on the demo; then a run MLflow records after the build fixed
    its runs (int_runs_classified) is in no rebuilt mart, until the next build has it in all."""
    run_dbt(["test", "--select", "assert_marts_agree_on_the_set_of_runs"], clone)
    url = clone.sqlalchemy_url("mlflow")
    client = MlflowClient(url, url)
    experiment_id = client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id
    source = _run_uuid(clone, "svm-rbf-c1")
    late = client.create_run(experiment_id, run_name="landed mid-build").info.run_id
    with clone.connect() as conn:
        rows = conn.execute(
            "select p.sample_index, p.class, array_agg(s.probability order by s.class)"
            " from dataset.predictions as p join dataset.prediction_scores as s using (prediction_id)"
            " where p.run_uuid = %s group by p.prediction_id order by p.prediction_id",
            (source,),
        ).fetchall()
        with conn.transaction():
            pred.write_batch(
                conn, late, [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows]), [1, 2, 3],
                schema=CONFIG.dataset_schema,
            )  # fmt: skip
        conn.commit()
    client.set_terminated(late, "FINISHED")
    client.log_metric(late, "training_loss", 0.5)  # a Metric node of the graph, compared with nothing

    # the marts rebuilt over the runs fixed before the run landed (int_runs_classified kept)
    run_dbt(["run", "--select", "path:models/marts"], clone)
    run_dbt(["test", "--select", "assert_marts_agree_on_the_set_of_runs"], clone)

    def holders() -> set[str]:
        with clone.connect() as conn:
            return {
                name
                for name, query in {
                    "dim_runs": "select 1 from marts.dim_runs where run_uuid = %s",
                    "fct_run_evaluation": "select 1 from marts.fct_run_evaluation where run_uuid = %s",
                    "rpt_model_leaderboard": "select 1 from marts.rpt_model_leaderboard where run_uuid = %s",
                    "lineage_nodes": "select 1 from marts.lineage_nodes where properties ->> 'run_uuid' = %s",
                    "lineage_edges": "select 1 from marts.lineage_edges where from_node_id like '%%' || %s || '%%'",
                }.items()
                if conn.execute(query, (late,)).fetchone()
            }

    assert holders() == set()
    run_dbt(["build"], clone)
    assert holders() == {"dim_runs", "fct_run_evaluation", "rpt_model_leaderboard", "lineage_nodes", "lineage_edges"}
