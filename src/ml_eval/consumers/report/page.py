"""Assemble and render: the report's rows arranged for the page, filled into its template.

The page is `templates/report.html.j2`, rendered by a Jinja environment that escapes every
value; the stylesheet and the small check script beside it are inlined, so the result is one
file that loads nothing from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ml_eval.consumers.report import charts
from ml_eval.consumers.report.data import (
    COMPARED,
    ComparedMetric,
    Evaluation,
    Group,
    Interval,
    LeaderboardRow,
    Named,
    ReportData,
    better,
    champion_and_runner_up,
    display_order,
    featured_runs,
    groups,
    history_by_metric,
)
from ml_eval.consumers.report.formatting import data_attrs, fmt, fmt_time, run_label

PAGE = "report.html.j2"
STYLESHEET = "report.css"
SCRIPT = "report.js"


@dataclass(frozen=True, slots=True)
class RunRef:
    """A run the metric history names but neither dim_runs nor the leaderboard holds."""

    run_uuid: str
    run_name: str | None = None


@dataclass(frozen=True, slots=True)
class ComparedRow:
    metric: ComparedMetric
    a: float | None  # the champion's value
    b: float | None  # the runner-up's
    better: str | None  # 'a', 'b' or None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The champion against the runner-up: the table's rows and the paired bars."""

    champion: Evaluation | LeaderboardRow
    runner_up: Evaluation | LeaderboardRow | None
    has_alias: bool
    rows: list[ComparedRow]
    chart: Markup


@dataclass(frozen=True, slots=True)
class Card:
    """A featured run: its leaderboard row, colour, confusion matrix and class bars."""

    row: LeaderboardRow
    colour: str
    charts: Markup
    interval: Interval | None = None  # its accuracy interval and calibration summary, when the mart holds them


def environment() -> Environment:
    """The Jinja environment over the package's templates; every value is escaped."""
    env = Environment(
        loader=PackageLoader("ml_eval.consumers.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(data_attrs=data_attrs, fmt=fmt, fmt_time=fmt_time, run_label=run_label, spark=charts.spark)
    return env


def _asset(env: Environment, name: str) -> Markup:
    """A file beside the templates, inlined as it is (our own CSS or script, not a template)."""
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    return Markup(source)


def _colours(data: ReportData) -> dict[str, str]:
    return {uuid: charts.PALETTE[i % len(charts.PALETTE)] for i, uuid in enumerate(display_order(data))}


def _comparison(data: ReportData, group: Group, index: int, colours: dict[str, str]) -> Comparison:
    pairing = champion_and_runner_up(group)
    champion = data.evaluation(pairing.champion)
    if pairing.runner_up is None:
        return Comparison(champion, None, pairing.has_alias, [], Markup(""))
    runner = data.evaluation(pairing.runner_up)
    rows = []
    for metric in COMPARED:
        a, b = getattr(champion, metric.key, None), getattr(runner, metric.key, None)
        rows.append(ComparedRow(metric, a, b, better(metric, a, b)))
    chart = charts.comparison_bars(
        f"comparison-{index}", champion, runner, (colours[champion.run_uuid], colours[runner.run_uuid])
    )
    return Comparison(champion, runner, pairing.has_alias, rows, chart)


def _class_names(data: ReportData, run_uuid: str) -> dict[int, str]:
    """A run's classes as the page names them (fct_class_metrics, else its confusion matrix)."""
    names = {c.actual_class: c.actual for c in data.confusion.get(run_uuid, [])}
    names |= {c.predicted_class: c.predicted for c in data.confusion.get(run_uuid, [])}
    return names | {m.class_label: m.name for m in data.class_metrics.get(run_uuid, [])}


def _calibration_summary(interval: Interval | None) -> str:
    if interval is None:
        return ""
    return (
        f"Brier score {fmt(interval.brier_score)} · "
        f"expected calibration error {fmt(interval.expected_calibration_error)} · diagonal: calibrated"
    )


def _cards(data: ReportData, group: Group, index: int, colours: dict[str, str]) -> list[Card]:
    depth = data.depth
    cards = []
    for i, row in enumerate(featured_runs(group)):
        run = data.evaluation(row)
        names = _class_names(data, row.run_uuid)
        class_intervals = {c.class_label: c for c in (depth.class_intervals or {}).get(row.run_uuid, [])}
        drawn = []
        if data.confusion.get(row.run_uuid):
            drawn.append(charts.heatmap(f"confusion-{index}-{i}", run, data.confusion[row.run_uuid]))
        if data.class_metrics.get(row.run_uuid):
            drawn.append(
                charts.class_bars(f"classes-{index}-{i}", run, data.class_metrics[row.run_uuid], class_intervals)
            )
        interval = (depth.intervals or {}).get(row.run_uuid)
        roc, pr, bins = (
            (part or {}).get(row.run_uuid) for part in (depth.roc, depth.precision_recall, depth.calibration)
        )
        if roc:
            drawn.append(charts.roc_chart(f"roc-{index}-{i}", run, roc, names))
        if pr:
            average_precision = {label: c.average_precision for label, c in class_intervals.items()}
            drawn.append(charts.pr_chart(f"precision-recall-{index}-{i}", run, pr, names, average_precision))
        if bins:
            summary = _calibration_summary(interval)
            drawn.append(charts.reliability_chart(f"reliability-{index}-{i}", run, bins, names, summary))
        cards.append(Card(row, colours[row.run_uuid], Markup("").join(drawn), interval))
    return cards


@dataclass(frozen=True, slots=True)
class Certainty:
    """A group's "how sure" part: accuracy intervals, each run against its reference, and the
    marts (or columns) the schema lacks for it."""

    intervals: Markup
    comparisons: Markup
    n_compared: int
    missing: list[str]


def _certainty(data: ReportData, group: Group, index: int, colours: dict[str, str]) -> Certainty:
    depth = data.depth
    intervals = [(row, depth.intervals[row.run_uuid]) for row in group.rows if row.run_uuid in (depth.intervals or {})]
    interval_chart = charts.interval_chart(f"intervals-{index}", intervals, colours) if intervals else Markup("")
    compared = []
    for row in group.rows:
        comparison = depth.comparison(row)
        if comparison is not None and comparison.reference_run_uuid != row.run_uuid:
            compared.append((row, comparison))
    names = {r.run_uuid: run_label(r) for r in data.runs} | {r.run_uuid: run_label(r) for r in data.leaderboard}
    comparison_chart = charts.mcnemar_chart(f"mcnemar-{index}", compared, names) if compared else Markup("")
    missing = depth.missing("roc", "precision_recall", "calibration", "comparisons", "intervals", "class_intervals")
    return Certainty(interval_chart, comparison_chart, len(compared), missing)


@dataclass(frozen=True, slots=True)
class Section:
    """A group's section: its headline run, its leaderboard, champion against runner-up, top runs."""

    index: int  # its position on the page, for element ids
    group: Group
    headline: LeaderboardRow
    has_alias: bool
    comparison: Comparison
    cards: list[Card]
    certainty: Certainty


def _sections(data: ReportData, colours: dict[str, str]) -> list[Section]:
    sections = []
    for index, group in enumerate(groups(data.leaderboard)):
        comparison = _comparison(data, group, index, colours)
        sections.append(
            Section(
                index,
                group,
                group.headline,
                comparison.has_alias,
                comparison,
                _cards(data, group, index, colours),
                _certainty(data, group, index, colours),
            )
        )
    return sections


def _history(data: ReportData, colours: dict[str, str]) -> Markup:
    names: dict[str, Named] = {r.run_uuid: r for r in data.runs} | {r.run_uuid: r for r in data.leaderboard}
    drawn = []
    for i, (key, runs) in enumerate(history_by_metric(data.history)):
        series = [
            charts.Series(names.get(uuid) or RunRef(uuid), colours.get(uuid, charts.NO_COLOUR), points)
            for uuid, points in runs.items()
        ]
        drawn.append(charts.line_chart(f"history-{i}", key, series))
    return Markup("").join(drawn)


def _tiles(data: ReportData, sections: list[Section]) -> list[tuple[str, str]]:
    """The page's counts; no run is headlined here: each group's section has its own headline."""
    experiments = sorted({str(r.experiment_name) for r in data.leaderboard})
    datasets = sorted({r.dataset_name for r in data.leaderboard})
    models = {section.group.name for section in sections if section.group.kind == "registered_model"}
    return [
        ("Evaluated runs", str(len(data.leaderboard))),
        ("Registered models", str(len(models))),
        ("Experiments", ", ".join(experiments) or "—"),
        ("Datasets", ", ".join(datasets) or "—"),
    ]


def render(data: ReportData, env: Environment | None = None) -> str:
    """The whole page as one string (all database text escaped)."""
    env = env or environment()
    colours = _colours(data)
    sections = _sections(data, colours)
    return env.get_template(PAGE).render(
        data=data,
        css=_asset(env, STYLESHEET),
        script=_asset(env, SCRIPT),
        tiles=_tiles(data, sections),
        colours=colours,
        several_experiments=len({r.experiment_name for r in data.leaderboard}) > 1,
        sections=sections,
        history=_history(data, colours),
    )
