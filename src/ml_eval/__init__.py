"""ml-eval: the Python side of the dbt project (warehouse launcher, model runs, reports).

For training scripts: `log_predictions` stores a run's predictions on a registered dataset,
checked and in one transaction, the same way as `ml-eval load-predictions`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["log_predictions"]


LOCK_WAIT_SECONDS = 600  # how long log_predictions waits for a build of the same database


def log_predictions(
    run_id: str,
    dataset: str,
    sample_keys: Sequence[object],
    predicted: Sequence[object],
    probabilities: Sequence[Sequence[float]] | None = None,
    *,
    labels: Sequence[object] | None = None,
    replace: bool = False,
) -> int:
    """Store MLflow run `run_id`'s predictions of `dataset`'s samples; return how many.

    `sample_keys` are the dataset's own keys (as loaded by `ml-eval load-dataset`), `predicted`
    the predicted labels; `probabilities`, if given, one row per prediction and one column per
    label, in the order of `labels` (pass the model's `classes_`), or of the dataset's classes.
    The warehouse is the one `ml-eval` uses (the PG* variables, ML_EVAL_* settings); with
    ML_EVAL_MLFLOW_URI set (MLflow elsewhere), a run not in the warehouse's copy yet is synced
    first (`ml-eval sync-mlflow`). Raises
    `ml_eval.errors.UserError` naming the first bad row; then nothing is written."""
    from ml_eval import loader, preflight
    from ml_eval import warehouse as wh
    from ml_eval.config import Config

    config = Config.resolve()
    warehouse = wh.resolve(config)
    # as `ml-eval load-predictions`: never while a build reads the tables (so one publish
    # cannot mix a run's old and new predictions); a training script waits for the build
    with preflight.exclusive(warehouse, "log_predictions", wait_seconds=LOCK_WAIT_SECONDS):
        if config.mlflow_uri:  # MLflow elsewhere: the run comes into the warehouse's copy first
            loader.sync_for_run(warehouse, config, str(run_id))
        with warehouse.connect() as conn:
            loaded = loader.load_predictions(
                conn,
                dataset_schema=config.dataset_schema,
                mlflow_schema=config.mlflow_schema,
                run_uuid=run_id,
                dataset=dataset,
                sample_keys=list(sample_keys),
                predicted=list(predicted),
                probabilities=None if probabilities is None else [list(row) for row in probabilities],
                labels=None if labels is None else list(labels),
                replace=replace,
                tolerance=float(config.var("probability_tolerance")),
                where=f"run {run_id}",
            )
    return loaded.n_predictions
