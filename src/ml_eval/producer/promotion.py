"""The promotion rule: when a newly trained version takes the champion alias, and why.

One rule, read by `ml-eval train` here and recomputed by the mart `fct_promotion_decisions`
from the same dbt vars (a test pins the two together):

- var `promotion_rule`: `metric` (one of var `metric_directions`, columns of fct_run_evaluation,
  each saying whether higher or lower is better) and `margin` (>= 0). A candidate takes
  `champion` only when the version holding it now was evaluated on the same dataset and the
  same evaluation samples (the same set of
  sample_index values in the Dataset Database), and the candidate beats it on `metric` by more
  than `margin`: `round(candidate - holder, 12) > margin` (`holder - candidate` for log_loss;
  rounded so floating-point noise is a tie). A tie, a smaller gain, or a holder evaluated on
  other samples leave the alias where it is; the candidate gets var `challenger_alias`.
- Beyond chance: with `max_p_value` set (0.05 when absent; an explicit null turns it off), the candidate
  must also be better than the holder beyond chance on the samples both predicted, as
  fct_run_comparisons tests it: it got more of them right that the holder got wrong (b) than
  the other way round (c), and the exact McNemar p-value (SciPy's `binomtest(b, b + c,
  0.5).pvalue`; 1 when b = c = 0) is below `max_p_value`. A gain on 54 samples that two
  samples decide is noise, and leaves the alias where it is.
- With no holder (a new registered model, or an alias removed by hand), the candidate is champion.
- The decision is recorded on the candidate's model version as tags under var
  `promotion_tag_prefix` (`decision`, `reason`, `metric`, `margin`, `value`, `holder_version`,
  `holder_run_id`, `holder_value`, `same_samples`, `decided_at`, and for the paired test
  `max_p_value`, `n_paired`, `candidate_only_correct`, `holder_only_correct`, `p_value`), which
  fct_promotion_decisions reads and decides again from (its `rule_decision`, tested equal to
  `decision`; its recorded counts and p-value tested equal to fct_run_comparisons').

The holder's value is the one MLflow logged for its run (the first key of var
`mlflow_metric_names` it has, as fct_run_evaluation reads it; the build checks it agrees with
the value computed from its predictions). Decisions are made once, at training time: a later
change of the rule does not move aliases, and the mart recomputes each decision with the
metric and margin it recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from ml_eval.config import Config
from ml_eval.errors import UserError

# log_loss is the one metric `train` computes where lower is better (its batch tie-break); a
# rule's metric and its direction come from var metric_directions, which the SQL reads too.
LOWER_IS_BETTER = frozenset({"log_loss"})
DECIMALS = 12  # differences are compared rounded to this many decimals
CHAMPION, CHALLENGER = "champion", "challenger"  # the two decisions (the aliases are vars)
DEFAULT_MAX_P_VALUE = 0.05  # promotion_rule.max_p_value when the var omits it (null: off)


@dataclass(frozen=True)
class Rule:
    metric: str
    margin: float
    higher_is_better: bool
    champion_alias: str
    challenger_alias: str
    tag_prefix: str
    max_p_value: float | None = None  # None: no beyond-chance condition

    @classmethod
    def from_config(cls, config: Config) -> Rule:
        return cls.from_vars(config.vars)

    @classmethod
    def from_vars(cls, values: Mapping[str, Any]) -> Rule:
        rule = values.get("promotion_rule") or {}
        if not isinstance(rule, Mapping):
            raise UserError(f"dbt var promotion_rule must be a mapping of metric and margin, not {rule!r}")
        metric, margin = rule.get("metric"), rule.get("margin", 0)
        directions = dict(values.get("metric_directions") or {})
        if metric not in directions:
            raise UserError(
                f"dbt var promotion_rule.metric is {metric!r}:"
                f" use one of var metric_directions ({', '.join(directions)})"
            )
        if directions[metric] not in ("higher", "lower"):
            raise UserError(f"dbt var metric_directions.{metric} is {directions[metric]!r}: use higher or lower")
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin) or margin < 0:
            raise UserError(f"dbt var promotion_rule.margin is {margin!r}: use a number >= 0")
        # absent (a project that sets promotion_rule without it, which replaces the whole var):
        # the default; only an explicit null turns the condition off
        max_p_value = rule.get("max_p_value", DEFAULT_MAX_P_VALUE)
        if max_p_value is not None and (
            isinstance(max_p_value, bool) or not isinstance(max_p_value, int | float) or not 0 < max_p_value <= 1
        ):
            raise UserError(
                f"dbt var promotion_rule.max_p_value is {max_p_value!r}: use a number in (0, 1], or null for no"
                " beyond-chance condition"
            )
        return cls(
            metric=metric,
            margin=float(margin),
            higher_is_better=directions[metric] == "higher",
            champion_alias=str(values["champion_alias"]),
            challenger_alias=str(values["challenger_alias"]),
            tag_prefix=str(values["promotion_tag_prefix"]),
            max_p_value=None if max_p_value is None else float(max_p_value),
        )

    def gain(self, candidate: float, holder: float) -> float:
        """How much better the candidate is than the holder (negative: worse), rounded."""
        difference = candidate - holder if self.higher_is_better else holder - candidate
        return round(difference, DECIMALS)

    def describe(self) -> str:
        beyond = f", beyond chance (McNemar p < {self.max_p_value:g})" if self.max_p_value is not None else ""
        return f"{self.metric} by more than {self.margin:g}{beyond}"


@dataclass(frozen=True)
class Paired:
    """The candidate against the holder on the samples both predicted (fct_run_comparisons')."""

    n_paired: int
    candidate_only_correct: int  # b: the candidate right, the holder wrong
    holder_only_correct: int  # c: the other way round

    @property
    def p_value(self) -> float:
        """The exact McNemar test: SciPy's two-sided binomial test of b in b + c at 1/2."""
        from scipy.stats import binomtest

        discordant = self.candidate_only_correct + self.holder_only_correct
        return 1.0 if discordant == 0 else float(binomtest(self.candidate_only_correct, discordant, 0.5).pvalue)

    def describe(self) -> str:
        return (
            f"McNemar p = {self.p_value:.4g}: {self.candidate_only_correct} samples only it got right,"
            f" {self.holder_only_correct} only the holder"
        )


@dataclass(frozen=True)
class Holder:
    """The version holding the champion alias when a candidate is judged."""

    version: str
    run_id: str
    value: float | None  # its logged value of the rule's metric; None when it logged none
    same_samples: bool  # evaluated on the candidate's dataset and samples
    paired: Paired | None = None  # the candidate against it, when same_samples


@dataclass(frozen=True)
class Decision:
    decision: str  # CHAMPION or CHALLENGER
    reason: str
    holder: Holder | None

    @property
    def promoted(self) -> bool:
        return self.decision == CHAMPION


def decide(rule: Rule, candidate_value: float, holder: Holder | None) -> Decision:
    """The rule itself: no I/O, so the tests can pin it to the mart's copy."""
    if holder is None:
        return Decision(CHAMPION, "no version holds the champion alias", None)
    if not holder.same_samples:
        return Decision(
            CHALLENGER, f"v{holder.version} holds champion and was evaluated on other samples: not comparable", holder
        )
    if holder.value is None or not math.isfinite(holder.value):
        return Decision(CHALLENGER, f"v{holder.version} holds champion and logged no {rule.metric}", holder)
    gain = rule.gain(candidate_value, holder.value)
    compared = f"{rule.metric} {candidate_value:.6f} vs v{holder.version}'s {holder.value:.6f}"
    if not gain > rule.margin:
        return Decision(CHALLENGER, f"{compared}: not better by more than {rule.margin:g}", holder)
    better = f"{compared}: better by more than {rule.margin:g}"
    if rule.max_p_value is None:
        return Decision(CHAMPION, better, holder)
    paired = holder.paired
    if paired is None:
        return Decision(CHALLENGER, f"{better}, but no paired comparison with v{holder.version}", holder)
    if paired.candidate_only_correct > paired.holder_only_correct and paired.p_value < rule.max_p_value:
        return Decision(CHAMPION, f"{better} and beyond chance ({paired.describe()})", holder)
    return Decision(CHALLENGER, f"{better} but not beyond chance at {rule.max_p_value:g} ({paired.describe()})", holder)


def _evaluation_samples(conn: psycopg.Connection, dataset_schema: str, run_id: str) -> tuple[int | None, list[int]]:
    """The dataset a run is evaluated on and its predictions' sample_index values, sorted."""
    row = conn.execute(
        sql.SQL(
            "select (select dataset_id from {run_datasets} where run_uuid = %(run)s),"
            " coalesce((select pg_catalog.array_agg(sample_index order by sample_index) from {predictions}"
            " where run_uuid = %(run)s), '{{}}')"
        ).format(
            run_datasets=sql.Identifier(dataset_schema, "run_datasets"),
            predictions=sql.Identifier(dataset_schema, "predictions"),
        ),
        {"run": run_id},
    ).fetchone()
    return row[0], list(row[1])


def paired_outcomes(conn: psycopg.Connection, dataset_schema: str, candidate_run_id: str, holder_run_id: str) -> Paired:
    """The two runs' predictions paired on the sample and scored against its target, as
    fct_run_comparisons pairs them (every pair of rows of one sample)."""
    row = conn.execute(
        sql.SQL(
            "select count(*),"
            " count(*) filter (where candidate.class = targets.class and holder.class <> targets.class),"
            " count(*) filter (where candidate.class <> targets.class and holder.class = targets.class)"
            " from {predictions} as candidate"
            " join {predictions} as holder on holder.sample_index = candidate.sample_index"
            " join {targets} as targets on targets.sample_index = candidate.sample_index"
            " where candidate.run_uuid = %(candidate)s and holder.run_uuid = %(holder)s"
        ).format(
            predictions=sql.Identifier(dataset_schema, "predictions"),
            targets=sql.Identifier(dataset_schema, "targets"),
        ),
        {"candidate": candidate_run_id, "holder": holder_run_id},
    ).fetchone()
    return Paired(int(row[0]), int(row[1]), int(row[2]))


def logged_value(client, run_id: str, metric: str, names: Mapping[str, Any]) -> float | None:
    """The run's latest logged value of `metric` under the first key of its var list it has."""
    keys = names.get(metric) or []
    keys = [keys] if isinstance(keys, str) else list(keys)
    logged = client.get_run(run_id).data.metrics
    return next((float(logged[key]) for key in keys if key in logged), None)


def current_holder(
    client,
    conn: psycopg.Connection,
    rule: Rule,
    *,
    candidate_run_id: str,
    registered_model: str,
    dataset_schema: str,
    dataset_id: int,
    sample_indexes: list[int],
    metric_names: Mapping[str, Any],
) -> Holder | None:
    """The version holding the champion alias now, compared with the candidate's evaluation set."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(registered_model, rule.champion_alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    held_dataset, held_samples = _evaluation_samples(conn, dataset_schema, version.run_id)
    same = held_dataset == dataset_id and held_samples == sorted(sample_indexes)
    value = logged_value(client, version.run_id, rule.metric, metric_names)
    paired = paired_outcomes(conn, dataset_schema, candidate_run_id, version.run_id) if same else None
    return Holder(str(version.version), version.run_id, value, same, paired)


def decision_tags(rule: Rule, decision: Decision, candidate_value: float) -> dict[str, str]:
    """The model-version tags that record a decision (read by fct_promotion_decisions)."""
    holder = decision.holder
    values = {
        "decision": decision.decision,
        "reason": decision.reason,
        "metric": rule.metric,
        "margin": repr(rule.margin),
        "value": repr(candidate_value),
        "holder_version": holder.version if holder else "",
        "holder_run_id": holder.run_id if holder else "",
        "holder_value": repr(holder.value) if holder and holder.value is not None else "",
        "same_samples": ("true" if holder.same_samples else "false") if holder else "",
        "decided_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "max_p_value": "" if rule.max_p_value is None else repr(rule.max_p_value),
    }
    paired = holder.paired if holder else None
    values.update(
        {
            "n_paired": str(paired.n_paired) if paired else "",
            "candidate_only_correct": str(paired.candidate_only_correct) if paired else "",
            "holder_only_correct": str(paired.holder_only_correct) if paired else "",
            "p_value": repr(paired.p_value) if paired else "",
        }
    )
    return {f"{rule.tag_prefix}{key}": value for key, value in values.items()}


def apply(client, rule: Rule, registered_model: str, version: str, decision: Decision, candidate_value: float) -> None:
    """Tag the version with the decision, then move the alias it earned (tags first: an alias
    never moves without its reason)."""
    for key, value in decision_tags(rule, decision, candidate_value).items():
        client.set_model_version_tag(registered_model, version, key, value)
    alias = rule.champion_alias if decision.promoted else rule.challenger_alias
    client.set_registered_model_alias(registered_model, alias, version)
