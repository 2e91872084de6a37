"""The curves, calibration and intervals of the marts equal scikit-learn's, SciPy's and an
independent NumPy computation, to 1e-9 (issue 17).

Expected values are computed from the source rows (predictions, prediction_scores, targets),
never from the marts: on the demo's Wine runs, and on runs made for the edge cases (a class
never predicted, a perfect run, tied scores, a binary run, one prediction, probabilities on
the bins' edges).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.preprocessing import label_binarize

from ml_eval import warehouse as wh
from support.metric_cases import CASES, case_rows, evaluated_cases, source_rows

TOLERANCE = 1e-9
EDGES = np.linspace(0.0, 1.0, 11)
DEPTH_CASES = [*CASES, "on_bin_edges"]


def _edge_rows(sample_index: np.ndarray, truth: np.ndarray, rng: np.random.Generator):
    """Class 1's probability on an edge of the 10 bins (as linspace computes it) or one double
    either side of it: where a bin that is off by one shows."""
    values = np.concatenate([EDGES, np.nextafter(EDGES[1:-1], 0), np.nextafter(EDGES[1:-1], 1), [0.3, 0.7]])
    p1 = rng.choice(values, size=len(truth))
    p2 = (1 - p1) * rng.choice([0.0, 0.25, 0.5, 0.8], size=len(truth))
    proba = np.column_stack([p1, p2, 1 - p1 - p2])
    return sample_index, proba.argmax(axis=1) + 1, proba, [1, 2, 3]


def _depth_rows(case: str, sample_index: np.ndarray, truth: np.ndarray, rng: np.random.Generator):
    if case == "on_bin_edges":
        return _edge_rows(sample_index, truth, rng)
    return case_rows(case, sample_index, truth, rng)


@pytest.fixture(scope="module")
def evaluated(warehouse: wh.Warehouse):
    """A database with the seeds, one real MLflow run per case, its predictions, and the marts."""
    yield from evaluated_cases(warehouse, "depth", DEPTH_CASES, experiment="depth-cases", seed=17, rows=_depth_rows)


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _close(actual, expected) -> bool:
    actual, expected = _number(actual), _number(expected)
    if actual is None or expected is None:
        return actual is None and expected is None
    if math.isinf(expected):
        return actual == expected
    return abs(actual - expected) <= TOLERANCE


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def _ece(y_true, y_pred, proba, classes, n_bins: int = 15) -> float | None:
    """Top-label expected calibration error, from the definition (README), in NumPy: each
    prediction's confidence is its predicted class's probability; bins (b/n, (b+1)/n]."""
    scored = np.isin(y_pred, classes)
    if not scored.any():
        return None
    columns = np.array([classes.index(c) for c in y_pred[scored]])
    confidence = proba[scored][np.arange(scored.sum()), columns]
    correct = (y_pred == y_true)[scored].astype(float)
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], confidence)
    gap = np.abs(np.bincount(bins, correct, n_bins) - np.bincount(bins, confidence, n_bins))
    return float(gap.sum() / len(confidence))


def _run_expected(y_true, y_pred, proba, classes) -> dict[str, float | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(classes) == 2:
            average_precision = skm.average_precision_score(y_true == classes[1], proba[:, 1])
            top_2 = skm.top_k_accuracy_score(y_true, proba[:, 1], k=2, labels=classes)
        else:
            truth = label_binarize(y_true, classes=classes)
            average_precision = skm.average_precision_score(truth, proba, average="macro")
            top_2 = skm.top_k_accuracy_score(y_true, proba, k=2, labels=classes)
        low, high = _wilson((y_true == y_pred).sum(), len(y_true))
        return {
            "average_precision_macro": average_precision,
            "brier_score": skm.brier_score_loss(y_true, proba, labels=classes),
            "expected_calibration_error": _ece(y_true, y_pred, proba, classes),
            "top_2_accuracy": top_2,
            "accuracy_ci_low": low,
            "accuracy_ci_high": high,
        }


def _check_run(conn, run_uuid: str, label: str) -> None:
    y_true, y_pred, proba, classes = source_rows(conn, run_uuid)
    expected = _run_expected(y_true, y_pred, proba, classes)
    row = conn.execute(
        f"select {', '.join(expected)} from marts.fct_run_evaluation where run_uuid = %s", (run_uuid,)
    ).fetchone()
    actual = dict(zip(expected, row, strict=True))
    wrong = {k: (actual[k], expected[k]) for k in expected if not _close(actual[k], expected[k])}
    assert not wrong, f"{label}: (marts, scikit-learn/SciPy/NumPy) differ: {wrong}"

    for column, label_value in enumerate(classes):
        y = (y_true == label_value).astype(int)
        score = proba[:, column]
        where = (run_uuid, label_value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fpr, tpr, roc_thresholds = skm.roc_curve(y, score)
            precision, recall, pr_thresholds = skm.precision_recall_curve(y, score, drop_intermediate=True)
            average_precision = skm.average_precision_score(y, score)
        roc = conn.execute(
            "select threshold, fpr, tpr from marts.fct_roc_curve"
            " where run_uuid = %s and class_label = %s order by point_index",
            where,
        ).fetchall()
        assert len(roc) == len(fpr), f"{label} class {label_value}: ROC points {len(roc)} != {len(fpr)}"
        for got, want in zip(roc, zip(roc_thresholds, fpr, tpr, strict=True), strict=True):
            assert all(_close(g, w) for g, w in zip(got, want, strict=True)), (label, label_value, got, want)
        pr = conn.execute(
            "select threshold, precision, recall from marts.fct_precision_recall_curve"
            " where run_uuid = %s and class_label = %s order by point_index",
            where,
        ).fetchall()
        assert len(pr) == len(precision), f"{label} class {label_value}: PR points {len(pr)} != {len(precision)}"
        for got, want in zip(pr, zip([*pr_thresholds, None], precision, recall, strict=True), strict=True):
            assert all(_close(g, w) for g, w in zip(got, want, strict=True)), (label, label_value, got, want)
        # the area under the kept ROC points is the exact ROC AUC the marts give
        if y.min() != y.max():
            assert abs(np.trapezoid([r[2] for r in roc], [r[1] for r in roc]) - skm.roc_auc_score(y, score)) <= 1e-12

        # calibration_curve's bins; an independent count (searchsorted on linspace) for the counts
        binned = np.searchsorted(np.linspace(0.0, 1.0, 11)[1:-1], score)
        counts = np.bincount(binned, minlength=10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                prob_true, prob_pred = calibration_curve(y, score, n_bins=10, pos_label=1)
            except ValueError:  # one label only: calibration_curve refuses; the same means by hand
                prob_true = (np.bincount(binned, y, 10) / np.maximum(counts, 1))[counts > 0]
                prob_pred = (np.bincount(binned, score, 10) / np.maximum(counts, 1))[counts > 0]
        bins = conn.execute(
            "select bin_index, n_predictions, observed_frequency, mean_predicted_probability"
            " from marts.fct_calibration_bins where run_uuid = %s and class_label = %s order by bin_index",
            where,
        ).fetchall()
        assert [b[0] for b in bins] == list(np.flatnonzero(counts)), (label, label_value, bins, counts)
        assert [b[1] for b in bins] == list(counts[counts > 0])
        for got, want_true, want_pred in zip(bins, prob_true, prob_pred, strict=True):
            assert _close(got[2], want_true) and _close(got[3], want_pred), (label, label_value, got)

        metrics = conn.execute(
            "select support, tp, average_precision, recall_ci_low, recall_ci_high"
            " from marts.fct_class_metrics where run_uuid = %s and class_label = %s",
            where,
        ).fetchone()
        if metrics is None:  # a scored class that is neither a true nor a predicted class
            assert y.sum() == 0 and not (y_pred == label_value).any()
            continue
        support, tp, got_ap, got_low, got_high = metrics
        assert _close(got_ap, average_precision), (label, label_value, got_ap, average_precision)
        want_low, want_high = _wilson(tp, support) if support else (None, None)
        assert _close(got_low, want_low) and _close(got_high, want_high), (label, label_value, metrics)


@pytest.mark.parametrize("case", DEPTH_CASES)
def test_edge_cases_equal_scikit_learn_and_scipy(evaluated, case):
    database, run_cases = evaluated
    run_uuid = next(r for r, c in run_cases.items() if c == case)
    with database.connect() as conn:
        _check_run(conn, run_uuid, case)


def test_the_demo_runs_equal_scikit_learn_and_scipy(built: wh.Warehouse):
    with built.connect() as conn:
        runs = [r[0] for r in conn.execute("select run_uuid from marts.fct_run_evaluation order by run_uuid")]
        assert len(runs) >= 8
        for run_uuid in runs:
            _check_run(conn, run_uuid, f"demo run {run_uuid}")


def test_the_published_curves_are_the_marts(evaluated):
    """The published copies (what consumers read) hold the same rows as the marts."""
    database, _ = evaluated
    with database.connect() as conn:
        for mart in ("fct_roc_curve", "fct_precision_recall_curve", "fct_calibration_bins"):
            differ = conn.execute(
                f"select count(*) from ((table marts.{mart} except all table published.{mart})"
                f" union all (table published.{mart} except all table marts.{mart})) as d"
            ).fetchone()[0]
            count = conn.execute(f"select count(*) from published.{mart}").fetchone()[0]
            assert differ == 0 and count > 0, mart
