"""The candidate models `ml-eval train` fits: one baseline and several real model families.

Each candidate is an unfitted scikit-learn estimator, the family it belongs to (the run's
`model_family` tag) and the hyperparameters worth logging, named as in `get_params()`.
Everything is seeded, so a re-run on the same data gives the same models and scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scikit-learn takes seconds to import: only when models are built
    from sklearn.base import BaseEstimator


@dataclass(frozen=True)
class Candidate:
    """One model to train: a name for its MLflow run, its family, and how to build it."""

    name: str
    family: str
    build: Callable[[], BaseEstimator]
    hyperparameters: tuple[str, ...] = field(default=())


def hyperparameters(estimator: BaseEstimator, names: Iterable[str]) -> dict[str, object]:
    """The values of `names` in `estimator.get_params(deep=True)`, keyed by their short name.

    A name matches the deep key that equals it or ends with `__<name>`
    (`logisticregression__C` for `C`), so pipelines log `C` rather than the step path.
    """
    params = estimator.get_params(deep=True)
    found: dict[str, object] = {}
    for name in names:
        keys = [key for key in params if key == name or key.endswith(f"__{name}")]
        if len(keys) != 1:
            raise ValueError(f"{type(estimator).__name__} has {len(keys)} parameters named {name!r}: {keys}")
        found[name] = params[keys[0]]
    return found


def default_candidates(random_state: int = 42) -> list[Candidate]:
    """Eight runs across five families, all fast on the 178 Wine samples."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.dummy import DummyClassifier
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    def logistic(c: float) -> Callable[[], BaseEstimator]:
        return lambda: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))

    def boosting(n_estimators: int, learning_rate: float, max_depth: int) -> Callable[[], BaseEstimator]:
        return lambda: GradientBoostingClassifier(
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            max_depth=max_depth,
            random_state=random_state,
        )

    def svm(c: float) -> Callable[[], BaseEstimator]:
        # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its documented
        # replacement: Platt scaling fitted on cross-validated decision values.
        return lambda: make_pipeline(
            StandardScaler(), CalibratedClassifierCV(SVC(kernel="rbf", C=c), method="sigmoid", ensemble=False)
        )

    def knn(k: int) -> Callable[[], BaseEstimator]:
        return lambda: make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))

    linear = ("C", "max_iter", "solver")
    boosted = ("n_estimators", "learning_rate", "max_depth", "subsample", "random_state")
    return [
        Candidate(
            "baseline-most-frequent", "baseline", lambda: DummyClassifier(strategy="most_frequent"), ("strategy",)
        ),
        Candidate("logreg-c0.1", "linear", logistic(0.1), linear),
        Candidate("logreg-c10", "linear", logistic(10.0), linear),
        Candidate("gboost-100x0.1-depth3", "tree_ensemble", boosting(100, 0.1, 3), boosted),
        Candidate("gboost-50x0.3-depth2", "tree_ensemble", boosting(50, 0.3, 2), boosted),
        Candidate("svm-rbf-c1", "svm", svm(1.0), ("kernel", "C", "gamma", "method", "cv")),
        Candidate("knn-5", "knn", knn(5), ("n_neighbors", "weights", "metric")),
        Candidate("knn-15", "knn", knn(15), ("n_neighbors", "weights", "metric")),
    ]
