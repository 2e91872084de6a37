"""Every metric of every run in the marts equals scikit-learn's, to 1e-9.

The expected values are computed with scikit-learn from the source rows (predictions,
prediction_scores, targets), never from the marts. Besides realistic runs, runs are made
on purpose for the edge cases: a class never predicted, a perfect run, an all-wrong run,
targets of one class, a single prediction, tied scores, a binary run.
"""

from __future__ import annotations

import math
import warnings

import pytest
from sklearn import metrics as skm
from sklearn.utils.multiclass import unique_labels

from ml_eval import warehouse as wh
from support.metric_cases import CASES, evaluated_cases, source_rows

TOLERANCE = 1e-9


def _log_agreeing_metrics(client, run_id, case, y_true, predicted, proba, classes) -> None:
    if case == "noisy":  # MLflow-logged values the marts must agree with
        client.log_metric(run_id, "accuracy_score", skm.accuracy_score(y_true, predicted))
        client.log_metric(run_id, "log_loss", skm.log_loss(y_true, proba, labels=classes))
        client.log_metric(run_id, "training_loss", float("nan"), step=3)


@pytest.fixture(scope="module")
def evaluated(warehouse: wh.Warehouse):
    """A database with the seeds, one real MLflow run per case, its predictions, and the marts."""
    yield from evaluated_cases(
        warehouse, "metrics", CASES, experiment="metric-cases", seed=7, logged=_log_agreeing_metrics
    )


def _expected(y_true, y_pred, proba, classes) -> dict[str, float | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected: dict[str, float | None] = {
            "n_predictions": len(y_true),
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
            "cohen_kappa": skm.cohen_kappa_score(y_true, y_pred),
            "mcc": skm.matthews_corrcoef(y_true, y_pred),
            "log_loss": skm.log_loss(y_true, proba, labels=classes),
        }
        for average in ("macro", "weighted"):
            p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
            expected |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
        try:
            if len(classes) == 2:
                expected["roc_auc"] = skm.roc_auc_score(y_true, proba[:, 1])
            else:
                expected["roc_auc"] = skm.roc_auc_score(
                    y_true, proba, multi_class="ovr", average="macro", labels=classes
                )
        except ValueError:  # scikit-learn: undefined for this run
            expected["roc_auc"] = None
    return {
        k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)) for k, v in expected.items()
    }


def _close(actual, expected) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    return abs(actual - expected) <= TOLERANCE


def test_every_case_was_evaluated(evaluated):
    database, run_cases = evaluated
    with database.connect() as conn:
        got = {r[0] for r in conn.execute("select run_uuid from marts.fct_run_evaluation")}
    assert got == set(run_cases)


@pytest.mark.parametrize("case", CASES)
def test_run_metrics_equal_scikit_learn(evaluated, case):
    database, run_cases = evaluated
    run_uuid = next(r for r, c in run_cases.items() if c == case)
    with database.connect() as conn:
        y_true, y_pred, proba, classes = source_rows(conn, run_uuid)
        expected = _expected(y_true, y_pred, proba, classes)
        cur = conn.execute(
            f"select {', '.join(expected)} from marts.fct_run_evaluation where run_uuid = %s", (run_uuid,)
        )
        actual = dict(zip(expected, cur.fetchone(), strict=True))
    wrong = {k: (actual[k], expected[k]) for k in expected if not _close(actual[k], expected[k])}
    assert not wrong, f"{case}: (marts, scikit-learn) differ: {wrong}"


@pytest.mark.parametrize("case", CASES)
def test_confusion_matrix_and_class_metrics_equal_scikit_learn(evaluated, case):
    database, run_cases = evaluated
    run_uuid = next(r for r, c in run_cases.items() if c == case)
    with database.connect() as conn:
        y_true, y_pred, _, _ = source_rows(conn, run_uuid)
        labels = unique_labels(y_true, y_pred)
        matrix = skm.confusion_matrix(y_true, y_pred, labels=labels)
        cells = conn.execute(
            "select actual_class, predicted_class, n from marts.fct_confusion_matrix where run_uuid = %s",
            (run_uuid,),
        ).fetchall()
        per_class = conn.execute(
            "select class_label, support, tp, fp, fn, tn, precision, recall, f1, specificity"
            " from marts.fct_class_metrics where run_uuid = %s order by class_label",
            (run_uuid,),
        ).fetchall()
    assert len(cells) == len(labels) ** 2  # dense: zero cells present
    grid = {(a, p): n for a, p, n in cells}
    for i, actual in enumerate(labels):
        for j, predicted in enumerate(labels):
            assert grid[(actual, predicted)] == matrix[i, j]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert [row[0] for row in per_class] == list(labels)
    for k, row in enumerate(per_class):
        tp = matrix[k, k]
        fp = matrix[:, k].sum() - tp
        fn = matrix[k, :].sum() - tp
        tn = matrix.sum() - tp - fp - fn
        specificity = tn / (tn + fp) if tn + fp else 0.0
        assert row[1:6] == (s[k], tp, fp, fn, tn)
        for got, want in zip(row[6:], (p[k], r[k], f[k], specificity), strict=True):
            assert abs(got - want) <= TOLERANCE


def test_logged_metrics_agree_and_nan_history_is_kept(evaluated):
    database, run_cases = evaluated
    noisy = next(r for r, c in run_cases.items() if c == "noisy")
    with database.connect() as conn:
        flags = dict(conn.execute("select run_uuid, agrees_with_mlflow from marts.fct_run_evaluation"))
        nan_rows = conn.execute(
            "select metric_value, is_nan from marts.fct_metric_history"
            " where run_uuid = %s and metric_key = 'training_loss'",
            (noisy,),
        ).fetchall()
    assert flags[noisy] is True
    assert all(flag is None for run, flag in flags.items() if run != noisy)  # logged nothing
    assert nan_rows == [(None, True)]
