"""Fetch: the report's queries against the published marts, as typed rows, and its selection rules.

All of the report's SQL is here. Nothing is computed again: the rows are the marts' values as
read (timestamps in UTC), and the rules only choose which runs the page features.

The page has one section per ranking group of the leaderboard and dataset (`group_kind`,
`group_name`, `dataset_id`): each registered model, then each experiment's runs that were
never registered, on each dataset their runs are evaluated on. Groups are never ranked
against each other, nor is one of them "the" headline: each section is headed by its own
champion (the run the champion alias points at), else its top ranked run, with its dataset
named. The sections come in a fixed order that does not depend on the scores: registered
models first, then experiments, each by name, then by dataset name (`groups`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol, TypeVar

from psycopg import sql
from psycopg.rows import class_row

from ml_eval import warehouse as wh
from ml_eval.errors import UserError

log = logging.getLogger(__name__)

TOP_RUNS = 4  # runs of a group shown with a confusion matrix and class bars: the champion, then by rank
# the leaderboard's group kinds (rpt_model_leaderboard.group_kind), in the order of the page's sections
GROUP_KINDS = ("registered_model", "experiment")
GROUP_TITLES = {"registered_model": "Registered model", "experiment": "Experiment"}

# the marts the report reads (models/marts/_exposures.yml lists the same)
MARTS = (
    "rpt_model_leaderboard",
    "fct_run_evaluation",
    "fct_confusion_matrix",
    "fct_class_metrics",
    "fct_metric_history",
    "dim_runs",
)
# the marts of the evaluation's depth (curves, calibration, intervals, paired comparisons): read
# when the schema holds them; a schema published before them shows their sections as missing
DEPTH_MARTS = (
    "fct_roc_curve",
    "fct_precision_recall_curve",
    "fct_calibration_bins",
    "fct_run_comparisons",
)
# the columns fct_run_evaluation and fct_class_metrics gained with them
INTERVAL_COLUMNS = {
    "fct_run_evaluation": (
        "accuracy_ci_low",
        "accuracy_ci_high",
        "average_precision_macro",
        "brier_score",
        "expected_calibration_error",
        "top_2_accuracy",
    ),
    "fct_class_metrics": ("average_precision", "recall_ci_low", "recall_ci_high"),
}


class Named(Protocol):
    """A row that names an MLflow run."""

    @property
    def run_uuid(self) -> str: ...

    @property
    def run_name(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class LeaderboardRow:
    """A row of rpt_model_leaderboard."""

    run_uuid: str
    experiment_name: str
    run_name: str | None
    model_family: str | None
    registered_model_name: str | None
    model_version: int | None
    is_champion: bool
    n_predictions: int
    accuracy: float | None
    balanced_accuracy: float | None
    f1_macro: float | None
    f1_weighted: float | None
    log_loss: float | None
    roc_auc: float | None
    agrees_with_mlflow: bool | None
    started_at: datetime | None
    experiment_rank: int
    registered_model_rank: int | None
    dataset_id: int
    dataset_name: str
    group_kind: str
    group_name: str
    group_rank: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A row of fct_run_evaluation (the metrics it computed; not MLflow's logged copies)."""

    run_uuid: str
    experiment_name: str
    run_name: str | None
    model_family: str | None
    started_at: datetime | None
    ended_at: datetime | None
    n_predictions: int
    n_classes: int
    accuracy: float | None
    balanced_accuracy: float | None
    precision_macro: float | None
    recall_macro: float | None
    f1_macro: float | None
    precision_weighted: float | None
    recall_weighted: float | None
    f1_weighted: float | None
    cohen_kappa: float | None
    mcc: float | None
    log_loss: float | None
    roc_auc: float | None
    probabilities_sum_to_one: bool | None
    agrees_with_mlflow: bool | None


def class_name(label: int, name: str | None) -> str:
    """A class as the page names it: its label in the dataset, else its integer class."""
    return str(label) if name is None else name


@dataclass(frozen=True, slots=True)
class ConfusionCell:
    """A cell of fct_confusion_matrix (zero cells included)."""

    run_uuid: str
    actual_class: int
    predicted_class: int
    n: int
    actual_class_name: str | None = None  # the label in the run's dataset (`setosa`; `1` for Wine)
    predicted_class_name: str | None = None

    @property
    def actual(self) -> str:
        return class_name(self.actual_class, self.actual_class_name)

    @property
    def predicted(self) -> str:
        return class_name(self.predicted_class, self.predicted_class_name)


@dataclass(frozen=True, slots=True)
class ClassMetric:
    """A row of fct_class_metrics."""

    run_uuid: str
    class_label: int
    support: int
    precision: float
    recall: float
    f1: float
    class_name: str | None = None  # the label in the run's dataset

    @property
    def name(self) -> str:
        return class_name(self.class_label, self.class_name)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """A logged value of fct_metric_history (NaN is a null value with is_nan)."""

    run_uuid: str
    metric_key: str
    step: int
    logged_at: datetime | None
    metric_value: float | None
    is_nan: bool
    is_evaluated_run: bool


@dataclass(frozen=True, slots=True)
class RunRow:
    """A row of dim_runs: every MLflow run, evaluated or not."""

    run_uuid: str
    run_name: str | None
    experiment_name: str
    run_status: str
    user_id: str | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    git_commit: str | None
    registered_versions: str | None
    aliases: str | None
    is_champion: bool
    n_predictions: int | None
    is_evaluated: bool
    exclusion_reason: str | None


@dataclass(frozen=True, slots=True)
class RocPoint:
    """A point of fct_roc_curve (one-vs-rest, scikit-learn's order; threshold +inf first)."""

    run_uuid: str
    class_label: int
    point_index: int
    threshold: float | None
    fpr: float | None  # null when undefined (no negative of the class)
    tpr: float | None  # null when undefined (no positive of the class)
    false_positives: int
    true_positives: int


@dataclass(frozen=True, slots=True)
class PrPoint:
    """A point of fct_precision_recall_curve (scikit-learn's order; last point recall 0, precision 1)."""

    run_uuid: str
    class_label: int
    point_index: int
    threshold: float | None
    precision: float | None
    recall: float | None


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """A non-empty bin of fct_calibration_bins (10 uniform bins per run and class)."""

    run_uuid: str
    class_label: int
    bin_index: int
    bin_lower: float
    bin_upper: float
    n_predictions: int
    mean_predicted_probability: float
    observed_frequency: float


@dataclass(frozen=True, slots=True)
class Interval:
    """A run's accuracy with its 95% Wilson interval, and its calibration summary (fct_run_evaluation)."""

    run_uuid: str
    n_predictions: int
    accuracy: float | None
    accuracy_ci_low: float | None
    accuracy_ci_high: float | None
    average_precision_macro: float | None
    brier_score: float | None
    expected_calibration_error: float | None
    top_2_accuracy: float | None


@dataclass(frozen=True, slots=True)
class ClassInterval:
    """A class's average precision and the 95% Wilson interval of its recall (fct_class_metrics)."""

    run_uuid: str
    class_label: int
    average_precision: float | None
    recall_ci_low: float | None
    recall_ci_high: float | None


@dataclass(frozen=True, slots=True)
class RunComparison:
    """A row of fct_run_comparisons: a run against its reference on the samples both predicted."""

    run_uuid: str
    reference_run_uuid: str
    reference_kind: str  # 'champion' | 'experiment_top'
    n_paired: int
    n_run_only_correct: int  # b: the run right, the reference wrong
    n_reference_only_correct: int  # c: the reference right, the run wrong
    mcnemar_p_value: float | None
    is_better_beyond_chance: bool | None


class OfRun(Protocol):
    """A row of one run's."""

    @property
    def run_uuid(self) -> str: ...


Row = TypeVar("Row")
OfRunT = TypeVar("OfRunT", bound=OfRun)

QUERIES: dict[type, sql.SQL] = {
    LeaderboardRow: sql.SQL("""
        select run_uuid, experiment_name, run_name, model_family, registered_model_name,
            model_version, is_champion, n_predictions, accuracy, balanced_accuracy, f1_macro,
            f1_weighted, log_loss, roc_auc, agrees_with_mlflow, started_at, experiment_rank,
            registered_model_rank, dataset_id, dataset_name, group_kind, group_name, group_rank
        from {schema}.rpt_model_leaderboard
        order by group_kind, group_name, dataset_name, group_rank, started_at, run_uuid
    """),
    Evaluation: sql.SQL("""
        select run_uuid, experiment_name, run_name, model_family, started_at, ended_at,
            n_predictions, n_classes, accuracy, balanced_accuracy, precision_macro, recall_macro,
            f1_macro, precision_weighted, recall_weighted, f1_weighted, cohen_kappa, mcc,
            log_loss, roc_auc, probabilities_sum_to_one, agrees_with_mlflow
        from {schema}.fct_run_evaluation
    """),
    ConfusionCell: sql.SQL("""
        select run_uuid, actual_class, predicted_class, n, actual_class_name, predicted_class_name
        from {schema}.fct_confusion_matrix
        order by run_uuid, actual_class, predicted_class
    """),
    ClassMetric: sql.SQL("""
        select run_uuid, class_label, support, precision, recall, f1, class_name
        from {schema}.fct_class_metrics
        order by run_uuid, class_label
    """),
    # only the (run, metric) series MLflow logged at more than one step: the curves
    HistoryPoint: sql.SQL("""
        select history.run_uuid, history.metric_key, history.step, history.logged_at,
            history.metric_value, history.is_nan, history.is_evaluated_run
        from {schema}.fct_metric_history as history
        inner join (
            select run_uuid, metric_key
            from {schema}.fct_metric_history
            group by run_uuid, metric_key
            having count(distinct step) > 1
        ) as series
            on history.run_uuid = series.run_uuid and history.metric_key = series.metric_key
        order by history.metric_key, history.run_uuid, history.step, history.logged_at
    """),
    RunRow: sql.SQL("""
        select run_uuid, run_name, experiment_name, run_status, user_id, started_at, ended_at,
            duration_seconds, git_commit, registered_versions, aliases, is_champion,
            n_predictions, is_evaluated, exclusion_reason
        from {schema}.dim_runs
        order by started_at, run_uuid
    """),
}

# the depth marts' queries, run only when the schema holds their table (and columns)
DEPTH_QUERIES: dict[type, sql.SQL] = {
    RocPoint: sql.SQL("""
        select run_uuid, class_label, point_index, threshold, fpr, tpr, false_positives, true_positives
        from {schema}.fct_roc_curve
        order by run_uuid, class_label, point_index
    """),
    PrPoint: sql.SQL("""
        select run_uuid, class_label, point_index, threshold, precision, recall
        from {schema}.fct_precision_recall_curve
        order by run_uuid, class_label, point_index
    """),
    CalibrationBin: sql.SQL("""
        select run_uuid, class_label, bin_index, bin_lower, bin_upper, n_predictions,
            mean_predicted_probability, observed_frequency
        from {schema}.fct_calibration_bins
        order by run_uuid, class_label, bin_index
    """),
    RunComparison: sql.SQL("""
        select run_uuid, reference_run_uuid, reference_kind, n_paired, n_run_only_correct,
            n_reference_only_correct, mcnemar_p_value, is_better_beyond_chance
        from {schema}.fct_run_comparisons
        order by run_uuid, reference_kind, reference_run_uuid
    """),
    Interval: sql.SQL("""
        select run_uuid, n_predictions, accuracy, accuracy_ci_low, accuracy_ci_high,
            average_precision_macro, brier_score, expected_calibration_error, top_2_accuracy
        from {schema}.fct_run_evaluation
    """),
    ClassInterval: sql.SQL("""
        select run_uuid, class_label, average_precision, recall_ci_low, recall_ci_high
        from {schema}.fct_class_metrics
        order by run_uuid, class_label
    """),
}
# what each depth query needs in the schema: its table, and the columns it gained
DEPTH_NEEDS: dict[type, tuple[str, tuple[str, ...]]] = {
    RocPoint: ("fct_roc_curve", ()),
    PrPoint: ("fct_precision_recall_curve", ()),
    CalibrationBin: ("fct_calibration_bins", ()),
    RunComparison: ("fct_run_comparisons", ()),
    Interval: ("fct_run_evaluation", INTERVAL_COLUMNS["fct_run_evaluation"]),
    ClassInterval: ("fct_class_metrics", INTERVAL_COLUMNS["fct_class_metrics"]),
}

TABLES_IN_SCHEMA = sql.SQL("select table_name from information_schema.tables where table_schema = %s")
COLUMNS_IN_SCHEMA = sql.SQL("select table_name, column_name from information_schema.columns where table_schema = %s")


class ComparedMetric(NamedTuple):
    """A fct_run_evaluation column shown when the champion meets the runner-up."""

    key: str
    label: str
    higher_is_better: bool


COMPARED = (
    ComparedMetric("f1_macro", "Macro F1", True),
    ComparedMetric("accuracy", "Accuracy", True),
    ComparedMetric("balanced_accuracy", "Balanced accuracy", True),
    ComparedMetric("precision_macro", "Macro precision", True),
    ComparedMetric("recall_macro", "Macro recall", True),
    ComparedMetric("f1_weighted", "Weighted F1", True),
    ComparedMetric("roc_auc", "ROC AUC (OvR macro)", True),
    ComparedMetric("mcc", "Matthews corr. coef.", True),
    ComparedMetric("cohen_kappa", "Cohen's kappa", True),
    ComparedMetric("log_loss", "Log loss", False),
)
# the compared metrics bounded by 0 and 1: drawn as bars too
BOUNDED = frozenset(
    {"f1_macro", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_weighted", "roc_auc"}
)


@dataclass(frozen=True, slots=True)
class Depth:
    """The depth marts' rows by run; None where the schema lacks the mart (or its new columns)."""

    roc: dict[str, list[RocPoint]] | None = None
    precision_recall: dict[str, list[PrPoint]] | None = None
    calibration: dict[str, list[CalibrationBin]] | None = None
    comparisons: dict[str, list[RunComparison]] | None = None
    intervals: dict[str, Interval] | None = None
    class_intervals: dict[str, list[ClassInterval]] | None = None

    def missing(self, *parts: str) -> list[str]:
        """The marts (or `mart.column`s) behind the named parts that the schema lacks."""
        names = {
            "roc": "fct_roc_curve",
            "precision_recall": "fct_precision_recall_curve",
            "calibration": "fct_calibration_bins",
            "comparisons": "fct_run_comparisons",
            "intervals": "fct_run_evaluation.accuracy_ci_low",
            "class_intervals": "fct_class_metrics.recall_ci_low",
        }
        return [names[part] for part in parts if getattr(self, part) is None]

    def comparison(self, row: LeaderboardRow) -> RunComparison | None:
        """The run's comparison with its reference: the champion's, else the experiment's top run's."""
        rows = (self.comparisons or {}).get(row.run_uuid, [])
        return min(rows, key=lambda c: (c.reference_kind != "champion", c.reference_run_uuid), default=None)


@dataclass(frozen=True, slots=True)
class ReportData:
    """The rows of the marts the report shows, as read."""

    database: str
    schema: str
    leaderboard: list[LeaderboardRow]
    evaluations: dict[str, Evaluation]
    confusion: dict[str, list[ConfusionCell]]
    class_metrics: dict[str, list[ClassMetric]]
    history: list[HistoryPoint]
    runs: list[RunRow]
    depth: Depth = field(default_factory=lambda: Depth())
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def evaluation(self, row: LeaderboardRow) -> Evaluation | LeaderboardRow:
        """The run's fct_run_evaluation row (its leaderboard row if the mart lacks it)."""
        return self.evaluations.get(row.run_uuid, row)


def _by_run(rows: Iterable[OfRunT]) -> dict[str, list[OfRunT]]:
    grouped: dict[str, list[OfRunT]] = {}
    for row in rows:
        grouped.setdefault(row.run_uuid, []).append(row)
    return grouped


def load(warehouse: wh.Warehouse, schema: str) -> ReportData:
    """Read the marts in `schema`; a missing schema or mart stops with one line naming what to build."""
    with warehouse.connect(refuse_views=True) as conn:
        found = {name for (name,) in conn.execute(TABLES_IN_SCHEMA, (schema,))}
        missing = [name for name in MARTS if name not in found]
        if missing:
            raise UserError(
                f"schema {schema!r} of database {warehouse.database!r} lacks the mart(s) "
                f"{', '.join(missing)}: build and publish them first (`ml-eval demo`), "
                "or read the schema that holds them"
            )
        conn.execute("set time zone 'UTC'")

        def fetch(row_type: type[Row]) -> list[Row]:
            query = QUERIES[row_type].format(schema=sql.Identifier(schema))
            with conn.cursor(row_factory=class_row(row_type)) as cursor:
                return cursor.execute(query).fetchall()

        data = ReportData(
            database=warehouse.database,
            schema=schema,
            leaderboard=fetch(LeaderboardRow),
            evaluations={row.run_uuid: row for row in fetch(Evaluation)},
            confusion=_by_run(fetch(ConfusionCell)),
            class_metrics=_by_run(fetch(ClassMetric)),
            history=fetch(HistoryPoint),
            runs=fetch(RunRow),
            depth=_depth(conn, schema, found),
        )
    log.info(
        "read %d evaluated runs of %d from %s.%s", len(data.leaderboard), len(data.runs), warehouse.database, schema
    )
    return data


def _depth(conn, schema: str, tables: set[str]) -> Depth:
    """The depth marts' rows, each part only when the schema holds its table and columns."""
    columns: dict[str, set[str]] = {}
    for table, column in conn.execute(COLUMNS_IN_SCHEMA, (schema,)):
        columns.setdefault(table, set()).add(column)

    def fetch(row_type: type[Row]) -> list[Row] | None:
        table, needed = DEPTH_NEEDS[row_type]
        if table not in tables or not set(needed) <= columns.get(table, set()):
            log.info("schema %s lacks %s%s: its report sections say so", schema, table, needed and f" {needed}")
            return None
        query = DEPTH_QUERIES[row_type].format(schema=sql.Identifier(schema))
        with conn.cursor(row_factory=class_row(row_type)) as cursor:
            return cursor.execute(query).fetchall()

    def by_run(row_type: type[OfRunT]) -> dict[str, list[OfRunT]] | None:
        rows = fetch(row_type)
        return None if rows is None else _by_run(rows)

    intervals = fetch(Interval)
    return Depth(
        roc=by_run(RocPoint),
        precision_recall=by_run(PrPoint),
        calibration=by_run(CalibrationBin),
        comparisons=by_run(RunComparison),
        intervals=None if intervals is None else {row.run_uuid: row for row in intervals},
        class_intervals=by_run(ClassInterval),
    )


# --- selection rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """A ranking group of the leaderboard on one dataset: a registered model, or an experiment's
    unregistered runs."""

    kind: str  # rpt_model_leaderboard.group_kind
    name: str
    dataset_id: int
    dataset_name: str
    rows: list[LeaderboardRow]  # by group_rank, then the earlier run

    @property
    def title(self) -> str:
        return GROUP_TITLES.get(self.kind, self.kind)

    @property
    def headline(self) -> LeaderboardRow:
        """The group's champion, else its top ranked run."""
        return next((row for row in self.rows if row.is_champion), self.rows[0])

    @property
    def experiments(self) -> list[str]:
        return sorted({str(row.experiment_name) for row in self.rows})


GroupKey = tuple[str, str, int, str]  # group_kind, group_name, dataset_id, dataset_name


def _group_order(key: GroupKey) -> tuple[int, str, str, str, int]:
    kind, name, dataset_id, dataset_name = key
    return (GROUP_KINDS.index(kind) if kind in GROUP_KINDS else len(GROUP_KINDS), kind, name, dataset_name, dataset_id)


def _rank_order(row: LeaderboardRow) -> tuple:
    return (row.group_rank, row.started_at is None, row.started_at, row.run_uuid)


def groups(board: Iterable[LeaderboardRow]) -> list[Group]:
    """The leaderboard's groups: registered models, then experiments, each by name (code point
    order), then by dataset name; a group's runs by rank, then start, then run_uuid. The order
    never depends on the scores."""
    by_key: dict[GroupKey, list[LeaderboardRow]] = {}
    for row in board:
        by_key.setdefault((row.group_kind, row.group_name, row.dataset_id, row.dataset_name), []).append(row)
    return [
        Group(*key, sorted(rows, key=_rank_order))
        for key, rows in sorted(by_key.items(), key=lambda item: _group_order(item[0]))
    ]


@dataclass(frozen=True, slots=True)
class Pairing:
    """A group's champion (else its best ranked run) and its runner-up."""

    champion: LeaderboardRow
    runner_up: LeaderboardRow | None
    has_alias: bool  # False: no run of the group holds the champion alias, `champion` is the top ranked


def champion_and_runner_up(group: Group) -> Pairing:
    """The group's champion (else its best ranked run) and the best ranked other run of the group."""
    champion = group.headline
    others = [row for row in group.rows if row.run_uuid != champion.run_uuid]
    return Pairing(champion, others[0] if others else None, champion.is_champion)


def featured_runs(group: Group, top: int = TOP_RUNS) -> list[LeaderboardRow]:
    """The group's champion, then its runs by rank, `top` runs at most."""
    return sorted(group.rows, key=lambda r: not r.is_champion)[:top]  # stable: rank order kept


def better(metric: ComparedMetric, a: float | None, b: float | None) -> str | None:
    """'a' or 'b': whichever value is better for the metric; None when equal or missing."""
    if a is None or b is None or a == b:
        return None
    return "a" if (a > b) == metric.higher_is_better else "b"


def display_order(data: ReportData) -> list[str]:
    """Every run_uuid: the groups' order, then the runs not evaluated (for stable colours)."""
    order = [r.run_uuid for group in groups(data.leaderboard) for r in group.rows]
    seen = set(order)
    return order + [r.run_uuid for r in data.runs if r.run_uuid not in seen]


def history_by_metric(points: Iterable[HistoryPoint]) -> list[tuple[str, dict[str, list[HistoryPoint]]]]:
    """The metric-history series by metric key (sorted), then by run (in reading order)."""
    by_key: dict[str, dict[str, list[HistoryPoint]]] = {}
    for point in points:
        by_key.setdefault(point.metric_key, {}).setdefault(point.run_uuid, []).append(point)
    return sorted(by_key.items())
