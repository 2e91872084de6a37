"""`ml-eval report`: one static, self-contained HTML page of the evaluation marts.

Every number on the page is read from the published marts (schema `ML_EVAL_MARTS_SCHEMA`,
default `published`: what write-audit-publish released after every test passed); nothing is computed again here, only formatted for display. The charts are inline
SVG drawn in Python, so the page needs no network, script, font or stylesheet from outside.
Each mark of a chart carries its exact value in `data-*` attributes (and a `<title>`
tooltip), so a test can compare the page with the marts. A few lines of inline script
check, once the page loads, that every chart drew its marks and record the counts in
`data-rendered` attributes; the page reads the same without it.
"""

from __future__ import annotations

import argparse
import html
import logging
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql
from psycopg.rows import dict_row

from ml_eval import warehouse as wh
from ml_eval.errors import UserError

log = logging.getLogger(__name__)

MARTS_SCHEMA_ENV = "ML_EVAL_MARTS_SCHEMA"
DEFAULT_MARTS_SCHEMA = "published"  # what write-audit-publish released (macros/publish.sql)
DEFAULT_OUT = Path("target") / "report" / "index.html"  # temporary: until the report package lands
TOP_RUNS = 4  # runs shown with a confusion matrix and class bars: the champion, then by rank

# the marts the report reads (models/marts/_exposures.yml lists the same)
MARTS = (
    "rpt_model_leaderboard",
    "fct_run_evaluation",
    "fct_confusion_matrix",
    "fct_class_metrics",
    "fct_metric_history",
    "dim_runs",
)

QUERIES = {
    "leaderboard": """
        select run_uuid, experiment_name, run_name, model_family, registered_model_name,
            model_version, is_champion, n_predictions, accuracy, balanced_accuracy, f1_macro,
            f1_weighted, log_loss, roc_auc, agrees_with_mlflow, started_at, experiment_rank,
            registered_model_rank
        from {schema}.rpt_model_leaderboard
        order by experiment_name, experiment_rank, started_at, run_uuid
    """,
    "evaluations": """
        select run_uuid, experiment_name, run_name, model_family, started_at, ended_at,
            n_predictions, n_classes, accuracy, balanced_accuracy, precision_macro, recall_macro,
            f1_macro, precision_weighted, recall_weighted, f1_weighted, cohen_kappa, mcc,
            log_loss, roc_auc, probabilities_sum_to_one, agrees_with_mlflow
        from {schema}.fct_run_evaluation
    """,
    "confusion": """
        select run_uuid, actual_class, predicted_class, n
        from {schema}.fct_confusion_matrix
        order by run_uuid, actual_class, predicted_class
    """,
    "class_metrics": """
        select run_uuid, class_label, support, precision, recall, f1
        from {schema}.fct_class_metrics
        order by run_uuid, class_label
    """,
    # only the (run, metric) series MLflow logged at more than one step: the curves
    "history": """
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
    """,
    "runs": """
        select run_uuid, run_name, experiment_name, run_status, user_id, started_at, ended_at,
            duration_seconds, git_commit, registered_versions, aliases, is_champion,
            n_predictions, is_evaluated, exclusion_reason
        from {schema}.dim_runs
        order by started_at, run_uuid
    """,
}

# fct_run_evaluation columns shown when the champion meets the runner-up; True: higher is better
COMPARED = (
    ("f1_macro", "Macro F1", True),
    ("accuracy", "Accuracy", True),
    ("balanced_accuracy", "Balanced accuracy", True),
    ("precision_macro", "Macro precision", True),
    ("recall_macro", "Macro recall", True),
    ("f1_weighted", "Weighted F1", True),
    ("roc_auc", "ROC AUC (OvR macro)", True),
    ("mcc", "Matthews corr. coef.", True),
    ("cohen_kappa", "Cohen's kappa", True),
    ("log_loss", "Log loss", False),
)
BOUNDED = {"f1_macro", "accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_weighted", "roc_auc"}
CLASS_METRICS = (("precision", "Precision", "#4e79a7"), ("recall", "Recall", "#f28e2b"), ("f1", "F1", "#59a14f"))
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#c9a227", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
OFF_SCALE = 1e300  # MLflow stores infinities as +/- the largest double: not drawable


def marts_schema(environ: dict | os._Environ | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(MARTS_SCHEMA_ENV) or DEFAULT_MARTS_SCHEMA


@dataclass
class ReportData:
    """The rows of the marts the report shows, as read."""

    database: str
    schema: str
    leaderboard: list[dict]
    evaluations: dict[str, dict]
    confusion: dict[str, list[dict]]
    class_metrics: dict[str, list[dict]]
    history: list[dict]
    runs: list[dict]
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _by_run(rows: Iterable[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["run_uuid"], []).append(row)
    return grouped


def load(warehouse: wh.Warehouse, schema: str | None = None) -> ReportData:
    """Read the marts; a missing schema or mart stops with one line naming what to build."""
    schema = schema or marts_schema()
    with warehouse.connect(row_factory=dict_row) as conn:
        found = {
            row["table_name"]
            for row in conn.execute(
                "select table_name from information_schema.tables where table_schema = %s", (schema,)
            )
        }
        missing = [name for name in MARTS if name not in found]
        if missing:
            raise UserError(
                f"schema {schema!r} of database {warehouse.database!r} lacks the mart(s) "
                f"{', '.join(missing)}: build them first (`ml-eval demo`), or set {MARTS_SCHEMA_ENV}"
            )
        conn.execute("set time zone 'UTC'")
        read = {
            name: conn.execute(sql.SQL(query).format(schema=sql.Identifier(schema))).fetchall()
            for name, query in QUERIES.items()
        }
    return ReportData(
        database=warehouse.database,
        schema=schema,
        leaderboard=read["leaderboard"],
        evaluations={row["run_uuid"]: row for row in read["evaluations"]},
        confusion=_by_run(read["confusion"]),
        class_metrics=_by_run(read["class_metrics"]),
        history=read["history"],
        runs=read["runs"],
    )


# --- formatting -------------------------------------------------------------------------


def esc(value: object) -> str:
    """Escape any text from the database for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def exact(value: object) -> str:
    """A value for a data attribute: floats round-trip exactly (repr), None is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return esc(value)


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return f"{value:.{digits}f}"


def fmt_time(value: datetime | None, same_day_as: datetime | None = None, zone: str = " UTC") -> str:
    """UTC date and time; the time alone when it falls on the day of `same_day_as`."""
    if value is None:
        return "—"
    value = value.astimezone(UTC)
    if same_day_as is not None and same_day_as.astimezone(UTC).date() == value.date():
        return value.strftime("%H:%M:%S")
    return value.strftime("%Y-%m-%d %H:%M:%S") + zone


def run_label(row: dict) -> str:
    return row.get("run_name") or row["run_uuid"][:8]


def attrs(**values: object) -> str:
    """` data-run-uuid="..." ...` from keyword arguments (underscores become dashes)."""
    return "".join(f' data-{key.replace("_", "-")}="{exact(value)}"' for key, value in values.items())


def _yes_no(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return '<span class="muted" title="no logged metric to compare">—</span>'
    return f'<span class="ok">✓ {yes}</span>' if value else f'<span class="bad">✗ {no}</span>'


# --- charts -----------------------------------------------------------------------------


def _lerp(start: str, end: str, t: float) -> str:
    a = [int(start[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(end[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b))


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [low, high] (for axes only)."""
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1, round(step))
    ticks = [math.floor(low / step) * step]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(ticks[0] + step * len(ticks))
    return [round(tick, 12) for tick in ticks]


def _tick(value: float) -> str:
    return f"{value:g}"


def figure(chart_id: str, kind: str, title: str, svg: str, caption: str = "", wide: bool = False) -> str:
    cls = "chart wide" if wide else "chart"
    cap = f'<figcaption><strong>{esc(title)}</strong>{f" <span>{esc(caption)}</span>" if caption else ""}</figcaption>'
    return f'<figure class="{cls}" data-chart="{esc(chart_id)}" data-kind="{kind}">{cap}{svg}</figure>'


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(label)}">{body}</svg>'
    )


def heatmap(chart_id: str, run: dict, cells: list[dict]) -> str:
    """The dense confusion matrix: blue diagonal (correct), red off-diagonal (errors)."""
    classes = sorted({c["actual_class"] for c in cells} | {c["predicted_class"] for c in cells})
    size = 64 if len(classes) <= 6 else max(22, 380 // len(classes))
    left, top = 92, 58
    width, height = left + size * len(classes) + 16, top + size * len(classes) + 16
    largest = max((c["n"] for c in cells), default=0) or 1
    out = [
        f'<text class="axis-title" x="{left + size * len(classes) / 2}" y="16" text-anchor="middle">Predicted class</text>',
        f'<text class="axis-title" transform="translate(18 {top + size * len(classes) / 2}) rotate(-90)" '
        f'text-anchor="middle">Actual class</text>',
    ]
    index = {label: i for i, label in enumerate(classes)}
    for label, i in index.items():
        out.append(f'<text class="tick" x="{left + size * i + size / 2}" y="{top - 10}" text-anchor="middle">{esc(label)}</text>')
        out.append(f'<text class="tick" x="{left - 10}" y="{top + size * i + size / 2 + 4}" text-anchor="end">{esc(label)}</text>')
    for cell in cells:
        x, y = left + size * index[cell["predicted_class"]], top + size * index[cell["actual_class"]]
        share = cell["n"] / largest  # colour intensity only
        diagonal = cell["actual_class"] == cell["predicted_class"]
        if cell["n"] == 0:
            colour = "#f3f4f6"
        elif diagonal:
            colour = _lerp("#dbe9f6", "#08306b", share)
        else:
            colour = _lerp("#fde0d2", "#a50f15", share)
        ink = "#ffffff" if cell["n"] and share > 0.5 else "#1f2328"
        tip = f"{run_label(run)}: actual {cell['actual_class']}, predicted {cell['predicted_class']}: {cell['n']} predictions"
        out.append(
            f'<rect class="mark cell" x="{x}" y="{y}" width="{size - 2}" height="{size - 2}" rx="3" fill="{colour}"'
            f'{attrs(run_uuid=run["run_uuid"], actual_class=cell["actual_class"], predicted_class=cell["predicted_class"], n=cell["n"])}>'
            f"<title>{esc(tip)}</title></rect>"
        )
        if size >= 28:
            out.append(
                f'<text class="cell-label" x="{x + (size - 2) / 2}" y="{y + (size - 2) / 2 + 5}" text-anchor="middle" '
                f'style="fill:{ink}">{cell["n"]}</text>'
            )
    return figure(
        chart_id,
        "heatmap",
        "Confusion matrix",
        _svg(width, height, "".join(out), f"confusion matrix of {run_label(run)}"),
        "rows: actual, columns: predicted",
    )


def class_bars(chart_id: str, run: dict, rows: list[dict]) -> str:
    """Grouped bars: precision, recall and F1 of each class, on a 0..1 axis."""
    left, top, bottom, plot_h = 44, 34, 44, 200
    group = 3 * 22 + 26
    width = left + group * max(1, len(rows)) + 12
    height = top + plot_h + bottom
    out = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        out.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y}" y2="{y}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4}" text-anchor="end">{_tick(tick)}</text>')
    for i, (key, label, colour) in enumerate(CLASS_METRICS):  # legend
        out.append(f'<rect x="{left + i * 84}" y="6" width="10" height="10" rx="2" fill="{colour}"/>')
        out.append(f'<text class="legend" x="{left + i * 84 + 14}" y="15">{label}</text>')
    for g, row in enumerate(rows):
        x0 = left + g * group + 13
        for i, (key, label, colour) in enumerate(CLASS_METRICS):
            value = row[key]
            h = plot_h * max(0.0, min(1.0, value))
            tip = f"{run_label(run)}: class {row['class_label']} {label.lower()} {fmt(value, 6)} (support {row['support']})"
            out.append(
                f'<rect class="mark bar" x="{x0 + i * 22}" y="{top + plot_h - h}" width="20" height="{h}" rx="2" '
                f'fill="{colour}"{attrs(run_uuid=run["run_uuid"], class_label=row["class_label"], metric=key, value=value)}>'
                f"<title>{esc(tip)}</title></rect>"
            )
        centre = x0 + 32
        out.append(f'<text class="tick" x="{centre}" y="{top + plot_h + 16}" text-anchor="middle">class {esc(row["class_label"])}</text>')
        out.append(f'<text class="tick muted" x="{centre}" y="{top + plot_h + 30}" text-anchor="middle">n={row["support"]}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{width - 8}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    return figure(
        chart_id,
        "class-bars",
        "Per-class precision, recall, F1",
        _svg(width, height, "".join(out), f"per-class metrics of {run_label(run)}"),
    )


def line_chart(chart_id: str, metric_key: str, series: list[tuple[dict, str, list[dict]]]) -> str:
    """One line per run (step on x, value on y); NaN and infinite values leave a gap."""
    left, top, right, bottom = 66, 20, 16, 44
    plot_w, plot_h = 520, 240
    points = [
        (p["step"], p["metric_value"])
        for _, _, rows in series
        for p in rows
        if p["metric_value"] is not None and abs(p["metric_value"]) < OFF_SCALE
    ]
    steps = [s for s, _ in points] or [0, 1]
    values = [v for _, v in points] or [0.0, 1.0]
    xt = nice_ticks(min(steps), max(steps), 6, integer=True)
    yt = nice_ticks(min(values), max(values), 5)
    x_lo, x_hi, y_lo, y_hi = xt[0], xt[-1], yt[0], yt[-1]

    def px(step: float) -> float:
        return round(left + plot_w * (step - x_lo) / ((x_hi - x_lo) or 1), 2)

    def py(value: float) -> float:
        return round(top + plot_h * (1 - (value - y_lo) / ((y_hi - y_lo) or 1)), 2)

    out = []
    for tick in yt:
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{py(tick)}" y2="{py(tick)}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{py(tick) + 4}" text-anchor="end">{_tick(tick)}</text>')
    for tick in xt:
        out.append(f'<line class="tick-mark" x1="{px(tick)}" x2="{px(tick)}" y1="{top + plot_h}" y2="{top + plot_h + 5}"/>')
        out.append(f'<text class="tick" x="{px(tick)}" y="{top + plot_h + 18}" text-anchor="middle">{_tick(tick)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    out.append(f'<text class="axis-title" x="{left + plot_w / 2}" y="{top + plot_h + 38}" text-anchor="middle">step</text>')
    out.append(
        f'<text class="axis-title" transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">value</text>'
    )
    legend = []
    for run, colour, rows in series:
        name = run_label(run)
        segments: list[list[dict]] = [[]]
        for p in rows:
            if p["metric_value"] is None or abs(p["metric_value"]) >= OFF_SCALE:
                segments.append([])  # a gap in the line
            else:
                segments[-1].append(p)
        segments = [segment for segment in segments if segment]
        ident = attrs(run_uuid=run["run_uuid"], metric_key=metric_key)
        for segment in segments:
            coords = " ".join(f"{px(p['step'])},{py(p['metric_value'])}" for p in segment)
            out.append(
                f'<polyline class="mark line" points="{coords}" fill="none" stroke="{colour}" stroke-width="2"'
                f"{ident}><title>{esc(name)}: {esc(metric_key)}</title></polyline>"
            )
        for p in rows:
            drawn = p["metric_value"] is not None and abs(p["metric_value"]) < OFF_SCALE
            value = "NaN" if p["is_nan"] else fmt(p["metric_value"], 6)
            tip = esc(f"{name}: {metric_key} at step {p['step']} = {value}")
            if drawn:
                out.append(
                    f'<circle class="mark point" cx="{px(p["step"])}" cy="{py(p["metric_value"])}" r="2.4" fill="{colour}"'
                    f'{ident}{attrs(step=p["step"], value=p["metric_value"], is_nan=p["is_nan"])}><title>{tip}</title></circle>'
                )
            else:  # kept in the DOM (with its value) but not on the plot
                out.append(
                    f'<g class="undrawn"{ident}{attrs(step=p["step"], value=p["metric_value"], is_nan=p["is_nan"])}>'
                    f"<title>{tip}</title></g>"
                )
        suffix = "" if rows[0]["is_evaluated_run"] else " (not evaluated)"
        legend.append(
            f'<li><span class="swatch" style="background:{colour}"></span>{esc(name)}{esc(suffix)}'
            f' <code>{esc(run["run_uuid"][:8])}</code></li>'
        )
    width, height = left + plot_w + right, top + plot_h + bottom
    svg = _svg(width, height, "".join(out), f"history of {metric_key}")
    return figure(chart_id, "history", metric_key, svg + f'<ul class="legend">{"".join(legend)}</ul>', "by step, one line per run")


def comparison_bars(chart_id: str, champion: dict, runner_up: dict, colours: tuple[str, str]) -> str:
    """Paired horizontal bars of the bounded (0..1) metrics of two runs."""
    keys = [(key, label) for key, label, _ in COMPARED if key in BOUNDED]
    left, top, bar_w, row_h = 170, 30, 380, 34
    width, height = left + bar_w + 70, top + row_h * len(keys) + 24
    out = []
    for i, (run, colour) in enumerate(zip((champion, runner_up), colours)):
        out.append(f'<rect x="{left + i * 190}" y="4" width="10" height="10" rx="2" fill="{colour}"/>')
        out.append(f'<text class="legend" x="{left + i * 190 + 14}" y="13">{esc(run_label(run))}</text>')
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + bar_w * tick
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{top - 4}" y2="{top + row_h * len(keys)}"/>')
        out.append(f'<text class="tick" x="{x}" y="{top + row_h * len(keys) + 16}" text-anchor="middle">{_tick(tick)}</text>')
    for r, (key, label) in enumerate(keys):
        y = top + r * row_h
        out.append(f'<text class="tick" x="{left - 8}" y="{y + row_h / 2 + 4}" text-anchor="end">{esc(label)}</text>')
        for i, (run, colour) in enumerate(zip((champion, runner_up), colours)):
            value = run.get(key)
            w = 0 if value is None else bar_w * max(0.0, min(1.0, value))
            by = y + 4 + i * 13
            out.append(
                f'<rect class="mark bar" x="{left}" y="{by}" width="{w}" height="12" rx="2" fill="{colour}"'
                f'{attrs(run_uuid=run["run_uuid"], metric=key, value=value)}>'
                f"<title>{esc(run_label(run))}: {esc(label)} {fmt(value, 6)}</title></rect>"
            )
            out.append(f'<text class="value" x="{left + w + 4}" y="{by + 10}">{fmt(value, 3)}</text>')
    return figure(chart_id, "comparison", "Champion against runner-up", _svg(width, height, "".join(out), "champion against runner-up"))


def spark(value: float | None) -> str:
    """A small inline bar for a 0..1 value in a table cell."""
    w = 0 if value is None else round(80 * max(0.0, min(1.0, value)), 2)
    return (
        f'<svg class="spark" viewBox="0 0 80 8" width="80" height="8" aria-hidden="true">'
        f'<rect x="0" y="0" width="80" height="8" rx="2" fill="#eef1f4"/>'
        f'<rect x="0" y="0" width="{w}" height="8" rx="2" fill="#4e79a7"/></svg>'
    )


# --- page -------------------------------------------------------------------------------


def _champion_and_runner_up(board: list[dict]) -> tuple[dict | None, dict | None, bool]:
    """The champion (else the best ranked) and the best ranked other run of its model/experiment."""
    if not board:
        return None, None, False
    champions = [row for row in board if row["is_champion"]]
    has_alias = bool(champions)
    champion = champions[0] if champions else board[0]
    if champion["registered_model_name"] is not None:
        peers = [r for r in board if r["registered_model_name"] == champion["registered_model_name"]]
        peers.sort(key=lambda r: r["registered_model_rank"])  # stable: board order breaks ties
    else:
        peers = [r for r in board if r["experiment_name"] == champion["experiment_name"]]
    others = [r for r in peers if r["run_uuid"] != champion["run_uuid"]]
    return champion, (others[0] if others else None), has_alias


def featured_runs(board: list[dict], top: int = TOP_RUNS) -> list[dict]:
    """The champions, then the runs in leaderboard order, `top` runs at most."""
    return sorted(board, key=lambda r: (not r["is_champion"], r["experiment_rank"]))[:top]


BADGE = '<span class="badge" title="the registered model\'s champion alias points here">★ champion</span>'
LEADERBOARD_VALUES = ("experiment_rank", "is_champion", "f1_macro", "accuracy", "log_loss", "roc_auc", "agrees_with_mlflow")


def _leaderboard(data: ReportData, colours: dict[str, str]) -> str:
    experiments = {r["experiment_name"] for r in data.leaderboard}
    rows = []
    for r in data.leaderboard:
        badge = BADGE if r["is_champion"] else ""
        version = (
            f'<span class="nowrap">{esc(r["registered_model_name"])} <span class="muted">v{esc(r["model_version"])}</span></span>'
            if r["registered_model_name"] is not None
            else '<span class="muted">not registered</span>'
        )
        rows.append(
            f'<tr class="{"champion" if r["is_champion"] else ""}"'
            f'{attrs(run_uuid=r["run_uuid"], **{key: r[key] for key in LEADERBOARD_VALUES})}>'
            f'<td class="rank">{r["experiment_rank"]}</td>'
            f'<td><span class="swatch" style="background:{colours[r["run_uuid"]]}"></span>'
            f'<span class="run-name">{esc(run_label(r))}</span> {badge}'
            f'<div class="sub"><code>{esc(r["run_uuid"])}</code></div></td>'
            f'<td>{esc(r["model_family"]) or "—"}</td>'
            + (f'<td>{esc(r["experiment_name"])}</td>' if len(experiments) > 1 else "")
            + f'<td class="num strong">{fmt(r["f1_macro"])} {spark(r["f1_macro"])}</td>'
            f'<td class="num">{fmt(r["accuracy"])}</td>'
            f'<td class="num">{fmt(r["log_loss"])}</td>'
            f'<td class="num">{fmt(r["roc_auc"])}</td>'
            f"<td>{version}</td>"
            f'<td>{_yes_no(r["agrees_with_mlflow"], "agrees", "differs")}</td></tr>'
        )
    if not rows:
        return '<p class="empty">No evaluated runs in the marts yet.</p>'
    head = (
        "<tr><th>Rank</th><th>Run</th><th>Family</th>"
        + ("<th>Experiment</th>" if len(experiments) > 1 else "")
        + '<th class="num">Macro F1 ▾</th><th class="num">Accuracy</th><th class="num">Log loss</th>'
        '<th class="num">ROC AUC</th><th>Model version</th><th>MLflow’s logged metrics</th></tr>'
    )
    note = "Ranked by macro F1 within the experiment (ties: accuracy, then log loss, then the earlier run)."
    table = f'<table class="board" id="leaderboard"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="scroll">{table}</div><p class="note">{note}</p>'


def _comparison(data: ReportData, colours: dict[str, str]) -> str:
    champion_row, runner_row, has_alias = _champion_and_runner_up(data.leaderboard)
    if champion_row is None:
        return '<p class="empty">No evaluated runs.</p>'
    champion = data.evaluations.get(champion_row["run_uuid"], champion_row)
    if runner_row is None:
        return f'<p class="empty">{esc(run_label(champion))} is the only evaluated run: nothing to compare.</p>'
    runner = data.evaluations.get(runner_row["run_uuid"], runner_row)
    title = "Champion" if has_alias else "Top ranked (no champion alias)"
    rows = []
    for key, label, higher in COMPARED:
        a, b = champion.get(key), runner.get(key)
        better = None
        if a is not None and b is not None and a != b:
            better = "a" if (a > b) == higher else "b"
        hint = "higher is better" if higher else "lower is better"
        rows.append(
            f'<tr data-metric="{key}"><th title="{hint}">{label} <span class="muted">{"↑" if higher else "↓"}</span></th>'
            f'<td class="num{" best" if better == "a" else ""}"{attrs(run_uuid=champion["run_uuid"], metric=key, value=a)}>{fmt(a)}</td>'
            f'<td class="num{" best" if better == "b" else ""}"{attrs(run_uuid=runner["run_uuid"], metric=key, value=b)}>{fmt(b)}</td></tr>'
        )
    head = (
        f'<tr><th></th><th class="num">{title}<div class="sub">{esc(run_label(champion))}</div></th>'
        f'<th class="num">Runner-up<div class="sub">{esc(run_label(runner))}</div></th></tr>'
    )
    table = (
        f'<table class="versus"{attrs(champion=champion["run_uuid"], runner_up=runner["run_uuid"])}>'
        f'<thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    )
    chart = comparison_bars(
        "comparison", champion, runner, (colours[champion["run_uuid"]], colours[runner["run_uuid"]])
    )
    return f'<div class="pair">{table}{chart}</div>'


def _run_cards(data: ReportData, colours: dict[str, str]) -> str:
    cards = []
    for i, row in enumerate(featured_runs(data.leaderboard)):
        run = data.evaluations.get(row["run_uuid"], row)
        badge = ' <span class="badge">★ champion</span>' if row["is_champion"] else ""
        charts = ""
        if data.confusion.get(row["run_uuid"]):
            charts += heatmap(f"confusion-{i}", run, data.confusion[row["run_uuid"]])
        if data.class_metrics.get(row["run_uuid"]):
            charts += class_bars(f"classes-{i}", run, data.class_metrics[row["run_uuid"]])
        cards.append(
            f'<article class="card" data-run-uuid="{esc(row["run_uuid"])}">'
            f'<h3><span class="swatch" style="background:{colours[row["run_uuid"]]}"></span>#{row["experiment_rank"]} '
            f"{esc(run_label(row))}{badge}</h3>"
            f'<p class="sub">{esc(row["model_family"] or "")} · macro F1 {fmt(row["f1_macro"])} · accuracy '
            f'{fmt(row["accuracy"])} · {row["n_predictions"]} predictions · <code>{esc(row["run_uuid"])}</code></p>'
            f'<div class="charts">{charts}</div></article>'
        )
    return "".join(cards) or '<p class="empty">No evaluated runs.</p>'


def _history(data: ReportData, colours: dict[str, str], names: dict[str, dict]) -> str:
    by_key: dict[str, dict[str, list[dict]]] = {}
    for point in data.history:
        by_key.setdefault(point["metric_key"], {}).setdefault(point["run_uuid"], []).append(point)
    charts = []
    for i, (key, runs) in enumerate(sorted(by_key.items())):
        series = [(names.get(uuid, {"run_uuid": uuid}), colours.get(uuid, "#6e7781"), rows) for uuid, rows in runs.items()]
        charts.append(line_chart(f"history-{i}", key, series))
    if not charts:
        return '<p class="empty">No run logged a metric at more than one step.</p>'
    return f'<div class="grid2">{"".join(charts)}</div>'


PROVENANCE_VALUES = ("run_uuid", "started_at", "ended_at", "experiment_name", "registered_versions")


def _provenance(data: ReportData, colours: dict[str, str]) -> str:
    rows = []
    for r in data.runs:
        duration = "—" if r["duration_seconds"] is None else f"{float(r['duration_seconds']):.1f} s"
        evaluated = (
            '<span class="ok">✓ yes</span>'
            if r["is_evaluated"]
            else f'<span class="muted">not evaluated: {esc(r["exclusion_reason"] or "")}</span>'
        )
        rows.append(
            f'<tr class="{"" if r["is_evaluated"] else "excluded"}"'
            f'{attrs(**{key: r[key] for key in PROVENANCE_VALUES})}>'
            f'<td class="nowrap"><span class="swatch" style="background:{colours.get(r["run_uuid"], "#d0d7de")}"></span>{esc(run_label(r))}'
            + (' <span class="badge">★</span>' if r["is_champion"] else "")
            + f'<div class="sub"><code>{esc(r["run_uuid"])}</code></div></td>'
            f'<td class="nowrap">{esc(r["experiment_name"])}</td>'
            f'<td>{esc(r["run_status"])}</td><td class="time">{fmt_time(r["started_at"], zone="")}</td>'
            f'<td class="time">{fmt_time(r["ended_at"], r["started_at"], zone="")}</td><td class="num">{duration}</td>'
            f'<td class="nowrap">{esc(r["registered_versions"] or "—")}'
            + (f' <span class="muted">({esc(r["aliases"])})</span>' if r["aliases"] else "")
            + f'</td><td class="num">{"—" if r["n_predictions"] is None else r["n_predictions"]}</td><td>{evaluated}</td></tr>'
        )
    head = (
        "<tr><th>Run · MLflow run_uuid</th><th>Experiment</th><th>Status</th><th>Started (UTC)</th>"
        '<th>Ended</th><th class="num">Duration</th><th>Model version</th><th class="num">Predictions</th><th>Evaluated</th></tr>'
    )
    note = (
        "Every MLflow run in the tracking tables: its run_uuid, experiment, when it started and ended"
        " (UTC), and the registered model version(s) made from it. Evaluated runs are the finished,"
        " undeleted runs with stored predictions."
    )
    table = f'<table class="runs" id="provenance"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="scroll">{table}</div><p class="note">{note}</p>'


def render(data: ReportData) -> str:
    """The whole page as one string (all database text escaped)."""
    order = [r["run_uuid"] for r in data.leaderboard]
    order += [r["run_uuid"] for r in data.runs if r["run_uuid"] not in order]
    colours = {uuid: PALETTE[i % len(PALETTE)] for i, uuid in enumerate(order)}
    names = {r["run_uuid"]: r for r in data.runs} | {r["run_uuid"]: r for r in data.leaderboard}
    champion, _, has_alias = _champion_and_runner_up(data.leaderboard)
    experiments = sorted({str(r["experiment_name"]) for r in data.leaderboard})
    tiles = [
        ("Evaluated runs", str(len(data.leaderboard))),
        ("Experiments", ", ".join(experiments) or "—"),
    ]
    if champion is not None:
        tiles = [
            ("Champion" if has_alias else "Top ranked", run_label(champion)),
            ("Macro F1", fmt(champion["f1_macro"])),
            ("Accuracy", fmt(champion["accuracy"])),
        ] + tiles
    tile_html = "".join(f'<div class="tile"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>' for k, v in tiles)
    sections = [
        ("leaderboard-section", "Leaderboard", _leaderboard(data, colours)),
        ("versus", "Champion vs runner-up", _comparison(data, colours)),
        ("runs-detail", "Top runs: where they go wrong", _run_cards(data, colours)),
        ("history", "Metric history", _history(data, colours, names)),
        ("provenance-section", "Where the numbers come from", _provenance(data, colours)),
    ]
    body = "".join(f'<section id="{sid}"><h2>{title}</h2>{content}</section>' for sid, title, content in sections)
    source = f"database <code>{esc(data.database)}</code>, schema <code>{esc(data.schema)}</code>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ml-eval · model evaluation report</title>
<style>{CSS}</style></head>
<body data-marts-schema="{esc(data.schema)}"><main>
<header><p class="eyebrow">ml-eval · evaluation report</p><h1>Which model should we ship?</h1>
<p class="lede">Built {fmt_time(data.generated_at)} from the marts in {source}. Every number is read
from the marts as dbt built them; this page only draws them.</p>
<div class="tiles">{tile_html}</div></header>
{body}
<footer>Generated by <code>ml-eval report</code>. Hover any cell, bar or point for its exact value.</footer>
</main><script>{SCRIPT}</script></body></html>
"""


def build_report(warehouse: wh.Warehouse, out_path: Path | str | None = None, *, schema: str | None = None) -> Path:
    """Read the marts of `warehouse` and write the report; return its path."""
    out = Path(out_path) if out_path else DEFAULT_OUT
    page = render(load(warehouse, schema))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d bytes)", out, len(page))
    return out


# --- command line -----------------------------------------------------------------------


def _arguments(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
    command.add_argument("--out", default=str(DEFAULT_OUT), help=f"the HTML file to write (default: {DEFAULT_OUT})")
    command.add_argument(
        "--schema", help=f"the schema of the marts (default: ${MARTS_SCHEMA_ENV} or {DEFAULT_MARTS_SCHEMA})"
    )
    if not any("--database" in action.option_strings for action in command._actions):
        command.add_argument("--database", help="database name (default: $PGDATABASE or ml_eval)")
    return command


def cmd_report(args: argparse.Namespace) -> None:
    env = dict(os.environ)
    if getattr(args, "database", None):
        env["PGDATABASE"] = args.database
    path = build_report(wh.resolve(env), getattr(args, "out", None), schema=getattr(args, "schema", None))
    print(f"report: {path}")


def add_command(subparsers) -> argparse.ArgumentParser:
    """Register `report` on the `ml-eval` sub-commands."""
    text = "write the evaluation report: one self-contained HTML page of the marts"
    command = subparsers.add_parser("report", help=text, description=text)
    command.set_defaults(func=cmd_report)
    return _arguments(command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _arguments(argparse.ArgumentParser(prog="python -m ml_eval.report", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cmd_report(args)
    except UserError as exc:
        print(f"ml-eval: error: {exc}", file=sys.stderr)
        return 2
    return 0


CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--soft:#f6f8fa;--accent:#0969da;--ok:#1a7f37;--bad:#cf222e;--gold:#9a6700}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","Liberation Sans",sans-serif;-webkit-font-smoothing:antialiased}
main{max-width:1280px;margin:0 auto;padding:36px 32px 64px}
code{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;color:#424a53}
h1{font-size:34px;line-height:1.15;margin:4px 0 8px;letter-spacing:-.02em}
h2{font-size:21px;margin:0 0 14px;letter-spacing:-.01em}
h3{font-size:17px;margin:0 0 2px;display:flex;align-items:center;gap:8px}
.eyebrow{margin:0;text-transform:uppercase;letter-spacing:.08em;font-size:12px;font-weight:600;color:var(--accent)}
.lede{color:var(--muted);max-width:780px;margin:0 0 18px}
section{margin-top:40px;padding-top:24px;border-top:1px solid var(--line)}
.tiles{display:flex;flex-wrap:wrap;gap:12px}
.tile{background:var(--soft);border:1px solid var(--line);border-radius:10px;padding:10px 16px;min-width:140px}
.tile .k{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.tile .v{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:8px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:middle}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line)}
.num{text-align:right;white-space:nowrap}
.strong{font-weight:650}
tr.champion td{background:#fff8e6}
td.rank{font-weight:700;font-size:17px;color:var(--muted);width:48px}
.run-name{font-weight:600}
.sub{color:var(--muted);font-size:12.5px;margin:2px 0 0;font-weight:400;text-transform:none;letter-spacing:0}
.badge{display:inline-block;background:#fff1c2;color:var(--gold);border:1px solid #f0d48a;border-radius:999px;padding:0 8px;font-size:12px;font-weight:600}
.swatch{display:inline-block;width:10px;height:10px;border-radius:3px;margin-right:8px;vertical-align:baseline}
.ok{color:var(--ok);font-weight:600}.bad{color:var(--bad);font-weight:600}.muted{color:var(--muted)}
.note{color:var(--muted);font-size:13px}
.empty{color:var(--muted);font-style:italic}
svg.spark{vertical-align:middle;margin-left:8px}
.pair{display:grid;grid-template-columns:minmax(400px,480px) 1fr;gap:28px;align-items:start}
table.versus th{white-space:nowrap}table.versus td.best{font-weight:700;color:var(--ok)}
table.versus td.best::after{content:" ●";font-size:10px}
.card{border:1px solid var(--line);border-radius:12px;padding:16px 18px;margin-bottom:18px}
.charts{display:flex;flex-wrap:wrap;gap:24px;margin-top:8px}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(580px,1fr));gap:24px 32px}
.scroll{overflow-x:auto}
table.runs td{padding:7px 8px;font-size:13.5px}table.runs th{padding:8px}
.nowrap{white-space:nowrap}
svg{max-width:100%;height:auto}
figure.chart{margin:0}
figcaption{font-size:13px;margin-bottom:4px}figcaption span{color:var(--muted)}
svg text{font-family:inherit;fill:#424a53}
svg .tick{font-size:11.5px}svg .legend{font-size:12px}svg .value{font-size:11px;fill:var(--muted)}
svg .axis-title{font-size:12px;fill:var(--muted);font-weight:600}
svg .cell-label{font-size:15px;font-weight:650}
svg .grid{stroke:#eaeef2;stroke-width:1}svg .axis,svg .tick-mark{stroke:#8c959f;stroke-width:1}
svg .mark:hover{opacity:.8}
ul.legend{list-style:none;margin:4px 0 0 62px;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px}
tr.excluded td{color:var(--muted)}
td.time{white-space:nowrap;font-size:13px}
footer{margin-top:48px;color:var(--muted);font-size:13px}
@media print{section{break-inside:avoid}}
"""

# Checks, once loaded, that every chart drew marks with a size; records the counts.
SCRIPT = """
(function () {
  var figures = document.querySelectorAll('figure[data-chart]'), ok = 0;
  figures.forEach(function (figure) {
    var marks = figure.querySelectorAll('svg .mark'), drawn = 0;
    marks.forEach(function (mark) {
      var box = mark.getBBox();
      if (box.width > 0 || box.height > 0) drawn++;
    });
    figure.setAttribute('data-marks', marks.length);
    figure.setAttribute('data-rendered', drawn);
    if (marks.length > 0 && drawn === marks.length) ok++;
    else figure.setAttribute('data-render-error', drawn + ' of ' + marks.length + ' marks drawn');
  });
  document.body.setAttribute('data-charts', figures.length);
  document.body.setAttribute('data-charts-rendered', ok);
})();
"""


if __name__ == "__main__":
    sys.exit(main())
