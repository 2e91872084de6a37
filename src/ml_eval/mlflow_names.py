"""The MLflow metric keys and run tags the marts read, as the producer reads the same vars.

fct_run_evaluation compares each metric with the value MLflow logged under the first key of
its list in var `mlflow_metric_names` the run logged (macros/mlflow_names/); `ml-eval train`
logs each metric under the first key of that list, so its runs are always compared. The run
tags read for the model family and the git commit are lists in order of preference too
(vars `model_family_tags`, `git_commit_tags`); `train` sets the first of each.
"""

from __future__ import annotations

from typing import Any

from ml_eval.config import Config
from ml_eval.errors import UserError

# vars renamed when they became lists in order of preference: a project still setting one is told
RENAMED_VARS = {"mlflow_metric_keys": "mlflow_metric_names", "model_family_tag": "model_family_tags"}


def _refuse_renamed(config: Config) -> None:
    for old, new in RENAMED_VARS.items():
        if old in config.vars:
            raise UserError(f"dbt var {old} is now {new}, a list of keys in order of preference: rename it")


def _keys(value: Any, name: str) -> list[str]:
    """A var's keys in order of preference (one string is a list of one), as the SQL reads them."""
    keys = [value] if isinstance(value, str) else list(value or [])
    if not all(isinstance(key, str) and key for key in keys):
        raise UserError(f"dbt var {name} must be a list of keys, not {value!r}")
    return keys


def logged_metric_keys(config: Config) -> dict[str, str]:
    """The marts' metric -> the key `train` logs it under: the first of its list in var
    mlflow_metric_names, the key fct_run_evaluation prefers (a metric with no key keeps its name)."""
    _refuse_renamed(config)
    names = {
        metric: _keys(value, f"mlflow_metric_names.{metric}")
        for metric, value in config.var("mlflow_metric_names").items()
    }
    return {metric: keys[0] for metric, keys in names.items() if keys}


def preferred_tag(config: Config, name: str) -> str:
    """The tag `train` sets for a list of tag keys in order of preference: the first."""
    _refuse_renamed(config)
    keys = _keys(config.var(name), name)
    if not keys:
        raise UserError(f"dbt var {name} names no tag key: `ml-eval train` needs one to set")
    return keys[0]
