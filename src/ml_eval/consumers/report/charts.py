"""The report's inline SVG charts, as pure functions of the typed rows.

Every chart is a `<figure data-chart data-kind>` holding one SVG; each mark (`.mark`) carries
its exact value in `data-*` attributes and a `<title>` tooltip, so a test can compare the page
with the marts. Markup is built with `markupsafe.Markup.format`, which escapes every value it
is given (run names, metric keys, class labels) unless it is already `Markup`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from ml_eval.consumers.report.data import (
    BOUNDED,
    COMPARED,
    ClassMetric,
    ConfusionCell,
    Evaluation,
    HistoryPoint,
    LeaderboardRow,
    Named,
)
from ml_eval.consumers.report.formatting import data_attrs, fmt, run_label

CLASS_METRICS = (("precision", "Precision", "#4e79a7"), ("recall", "Recall", "#f28e2b"), ("f1", "F1", "#59a14f"))
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#c9a227", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
NO_COLOUR = "#6e7781"  # a run the palette did not reach
OFF_SCALE = 1e300  # MLflow stores infinities as +/- the largest double: not drawable
EMPTY = Markup("")


@dataclass(frozen=True, slots=True)
class Series:
    """One run's line on a metric-history chart."""

    run: Named
    colour: str
    points: Sequence[HistoryPoint]


def _lerp(start: str, end: str, t: float) -> str:
    a = [int(start[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(end[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


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


def _short(text: str, limit: int = 11) -> Markup:
    """A class name short enough for an axis tick; a longer one is cut, whole in its tooltip."""
    if len(text) <= limit:
        return Markup("{}").format(text)
    return Markup("{}…<title>{}</title>").format(text[: limit - 1], text)


def figure(chart_id: str, kind: str, title: str, svg: Markup, caption: str = "", wide: bool = False) -> Markup:
    cap = Markup("<figcaption><strong>{}</strong>{}</figcaption>").format(
        title, Markup(" <span>{}</span>").format(caption) if caption else EMPTY
    )
    return Markup('<figure class="{}" data-chart="{}" data-kind="{}">{}{}</figure>').format(
        "chart wide" if wide else "chart", chart_id, kind, cap, svg
    )


def _svg(width: int, height: int, body: Sequence[Markup], label: str) -> Markup:
    return Markup('<svg viewBox="0 0 {0} {1}" width="{0}" height="{1}" role="img" aria-label="{2}">{3}</svg>').format(
        width, height, label, EMPTY.join(body)
    )


def heatmap(chart_id: str, run: Named, cells: Sequence[ConfusionCell]) -> Markup:
    """The dense confusion matrix: blue diagonal (correct), red off-diagonal (errors)."""
    classes = sorted({c.actual_class for c in cells} | {c.predicted_class for c in cells})
    size = 64 if len(classes) <= 6 else max(22, 380 // len(classes))
    left, top = 92, 58
    width, height = left + size * len(classes) + 16, top + size * len(classes) + 16
    largest = max((c.n for c in cells), default=0) or 1
    out = [
        Markup('<text class="axis-title" x="{}" y="16" text-anchor="middle">Predicted class</text>').format(
            left + size * len(classes) / 2
        ),
        Markup(
            '<text class="axis-title" transform="translate(18 {}) rotate(-90)" text-anchor="middle">Actual class</text>'
        ).format(top + size * len(classes) / 2),
    ]
    index = {label: i for i, label in enumerate(classes)}
    names = {c.actual_class: c.actual for c in cells} | {c.predicted_class: c.predicted for c in cells}
    for label, i in index.items():
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                left + size * i + size / 2, top - 10, _short(names[label])
            )
        )
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(
                left - 10, top + size * i + size / 2 + 4, _short(names[label])
            )
        )
    for cell in cells:
        x, y = left + size * index[cell.predicted_class], top + size * index[cell.actual_class]
        share = cell.n / largest  # colour intensity only
        if cell.n == 0:
            colour = "#f3f4f6"
        elif cell.actual_class == cell.predicted_class:
            colour = _lerp("#dbe9f6", "#08306b", share)
        else:
            colour = _lerp("#fde0d2", "#a50f15", share)
        ink = "#ffffff" if cell.n and share > 0.5 else "#1f2328"
        tip = f"{run_label(run)}: actual {cell.actual}, predicted {cell.predicted}: {cell.n} predictions"
        ident = data_attrs(
            run_uuid=run.run_uuid,
            actual_class=cell.actual_class,
            predicted_class=cell.predicted_class,
            n=cell.n,
            actual_class_name=cell.actual_class_name,
            predicted_class_name=cell.predicted_class_name,
        )
        out.append(
            Markup(
                '<rect class="mark cell" x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}"{}>'
                "<title>{}</title></rect>"
            ).format(x, y, size - 2, size - 2, colour, ident, tip)
        )
        if size >= 28:
            out.append(
                Markup('<text class="cell-label" x="{}" y="{}" text-anchor="middle" style="fill:{}">{}</text>').format(
                    x + (size - 2) / 2, y + (size - 2) / 2 + 5, ink, cell.n
                )
            )
    return figure(
        chart_id,
        "heatmap",
        "Confusion matrix",
        _svg(width, height, out, f"confusion matrix of {run_label(run)}"),
        "rows: actual, columns: predicted",
    )


def class_bars(chart_id: str, run: Named, rows: Sequence[ClassMetric]) -> Markup:
    """Grouped bars: precision, recall and F1 of each class, on a 0..1 axis."""
    left, top, bottom, plot_h = 44, 34, 44, 200
    group = 3 * 22 + 26
    width = left + group * max(1, len(rows)) + 12
    height = top + plot_h + bottom
    out = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        out.append(Markup('<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>').format(left, width - 8, y, y))
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(left - 6, y + 4, _tick(tick))
        )
    for i, (_, label, colour) in enumerate(CLASS_METRICS):  # legend
        out.append(Markup('<rect x="{}" y="6" width="10" height="10" rx="2" fill="{}"/>').format(left + i * 84, colour))
        out.append(Markup('<text class="legend" x="{}" y="15">{}</text>').format(left + i * 84 + 14, label))
    for g, row in enumerate(rows):
        x0 = left + g * group + 13
        for i, (key, label, colour) in enumerate(CLASS_METRICS):
            value: float = getattr(row, key)
            h = plot_h * max(0.0, min(1.0, value))
            tip = f"{run_label(run)}: class {row.name} {label.lower()} {fmt(value, 6)} (support {row.support})"
            ident = data_attrs(
                run_uuid=run.run_uuid, class_label=row.class_label, class_name=row.class_name, metric=key, value=value
            )
            out.append(
                Markup(
                    '<rect class="mark bar" x="{}" y="{}" width="20" height="{}" rx="2" fill="{}"{}>'
                    "<title>{}</title></rect>"
                ).format(x0 + i * 22, top + plot_h - h, h, colour, ident, tip)
            )
        centre = x0 + 32
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                centre, top + plot_h + 16, _short(f"class {row.name}" if row.name.isdigit() else row.name, 14)
            )
        )
        out.append(
            Markup('<text class="tick muted" x="{}" y="{}" text-anchor="middle">n={}</text>').format(
                centre, top + plot_h + 30, row.support
            )
        )
    out.append(Markup('<line class="axis" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/>').format(left, width - 8, top + plot_h))
    return figure(
        chart_id,
        "class-bars",
        "Per-class precision, recall, F1",
        _svg(width, height, out, f"per-class metrics of {run_label(run)}"),
    )


def _drawable(point: HistoryPoint) -> bool:
    return point.metric_value is not None and abs(point.metric_value) < OFF_SCALE


def line_chart(chart_id: str, metric_key: str, series: Sequence[Series]) -> Markup:
    """One line per run (step on x, value on y); NaN and infinite values leave a gap."""
    left, top, right, bottom = 66, 20, 16, 44
    plot_w, plot_h = 520, 240
    drawn = [p for line in series for p in line.points if _drawable(p)]
    steps = [p.step for p in drawn] or [0, 1]
    values = [p.metric_value for p in drawn] or [0.0, 1.0]
    xt = nice_ticks(min(steps), max(steps), 6, integer=True)
    yt = nice_ticks(min(values), max(values), 5)  # type: ignore[type-var]
    x_lo, x_hi, y_lo, y_hi = xt[0], xt[-1], yt[0], yt[-1]

    def px(step: float) -> float:
        return round(left + plot_w * (step - x_lo) / ((x_hi - x_lo) or 1), 2)

    def py(value: float) -> float:
        return round(top + plot_h * (1 - (value - y_lo) / ((y_hi - y_lo) or 1)), 2)

    out = []
    for tick in yt:
        out.append(
            Markup('<line class="grid" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/>').format(left, left + plot_w, py(tick))
        )
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(
                left - 6, py(tick) + 4, _tick(tick)
            )
        )
    for tick in xt:
        out.append(
            Markup('<line class="tick-mark" x1="{0}" x2="{0}" y1="{1}" y2="{2}"/>').format(
                px(tick), top + plot_h, top + plot_h + 5
            )
        )
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                px(tick), top + plot_h + 18, _tick(tick)
            )
        )
    out.append(
        Markup('<line class="axis" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/>').format(left, left + plot_w, top + plot_h)
    )
    out.append(
        Markup('<text class="axis-title" x="{}" y="{}" text-anchor="middle">step</text>').format(
            left + plot_w / 2, top + plot_h + 38
        )
    )
    out.append(
        Markup(
            '<text class="axis-title" transform="translate(14 {}) rotate(-90)" text-anchor="middle">value</text>'
        ).format(top + plot_h / 2)
    )
    legend = []
    for line in series:
        name = run_label(line.run)
        segments: list[list[HistoryPoint]] = [[]]
        for p in line.points:
            if _drawable(p):
                segments[-1].append(p)
            else:
                segments.append([])  # a gap in the line
        ident = data_attrs(run_uuid=line.run.run_uuid, metric_key=metric_key)
        for segment in (s for s in segments if s):
            coords = " ".join(f"{px(p.step)},{py(p.metric_value)}" for p in segment)  # type: ignore[arg-type]
            out.append(
                Markup(
                    '<polyline class="mark line" points="{}" fill="none" stroke="{}" stroke-width="2"{}>'
                    "<title>{}: {}</title></polyline>"
                ).format(coords, line.colour, ident, name, metric_key)
            )
        for p in line.points:
            value = "NaN" if p.is_nan else fmt(p.metric_value, 6)
            tip = f"{name}: {metric_key} at step {p.step} = {value}"
            point = data_attrs(step=p.step, value=p.metric_value, is_nan=p.is_nan)
            if _drawable(p):
                out.append(
                    Markup(
                        '<circle class="mark point" cx="{}" cy="{}" r="2.4" fill="{}"{}{}><title>{}</title></circle>'
                    ).format(px(p.step), py(p.metric_value), line.colour, ident, point, tip)  # type: ignore[arg-type]
                )
            else:  # kept in the DOM (with its value) but not on the plot
                out.append(Markup('<g class="undrawn"{}{}><title>{}</title></g>').format(ident, point, tip))
        suffix = "" if line.points[0].is_evaluated_run else " (not evaluated)"
        legend.append(
            Markup('<li><span class="swatch" style="background:{}"></span>{}{} <code>{}</code></li>').format(
                line.colour, name, suffix, line.run.run_uuid[:8]
            )
        )
    width, height = left + plot_w + right, top + plot_h + bottom
    svg = _svg(width, height, out, f"history of {metric_key}")
    return figure(
        chart_id,
        "history",
        metric_key,
        svg + Markup('<ul class="legend">{}</ul>').format(EMPTY.join(legend)),
        "by step, one line per run",
    )


def comparison_bars(
    chart_id: str,
    champion: Evaluation | LeaderboardRow,
    runner_up: Evaluation | LeaderboardRow,
    colours: tuple[str, str],
) -> Markup:
    """Paired horizontal bars of the bounded (0..1) metrics of two runs."""
    keys = [(metric.key, metric.label) for metric in COMPARED if metric.key in BOUNDED]
    left, top, bar_w, row_h = 170, 30, 380, 34
    width, height = left + bar_w + 70, top + row_h * len(keys) + 24
    pair = list(zip((champion, runner_up), colours, strict=True))
    out = []
    for i, (run, colour) in enumerate(pair):
        out.append(
            Markup('<rect x="{}" y="4" width="10" height="10" rx="2" fill="{}"/>').format(left + i * 190, colour)
        )
        out.append(Markup('<text class="legend" x="{}" y="13">{}</text>').format(left + i * 190 + 14, run_label(run)))
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + bar_w * tick
        out.append(
            Markup('<line class="grid" x1="{0}" x2="{0}" y1="{1}" y2="{2}"/>').format(
                x, top - 4, top + row_h * len(keys)
            )
        )
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                x, top + row_h * len(keys) + 16, _tick(tick)
            )
        )
    for r, (key, label) in enumerate(keys):
        y = top + r * row_h
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(
                left - 8, y + row_h / 2 + 4, label
            )
        )
        for i, (run, colour) in enumerate(pair):
            value: float | None = getattr(run, key, None)
            w = 0 if value is None else bar_w * max(0.0, min(1.0, value))
            by = y + 4 + i * 13
            out.append(
                Markup(
                    '<rect class="mark bar" x="{}" y="{}" width="{}" height="12" rx="2" fill="{}"{}>'
                    "<title>{}: {} {}</title></rect>"
                ).format(
                    left,
                    by,
                    w,
                    colour,
                    data_attrs(run_uuid=run.run_uuid, metric=key, value=value),
                    run_label(run),
                    label,
                    fmt(value, 6),
                )
            )
            out.append(
                Markup('<text class="value" x="{}" y="{}">{}</text>').format(left + w + 4, by + 10, fmt(value, 3))
            )
    return figure(
        chart_id, "comparison", "Champion against runner-up", _svg(width, height, out, "champion against runner-up")
    )


def spark(value: float | None) -> Markup:
    """A small inline bar for a 0..1 value in a table cell."""
    w = 0 if value is None else round(80 * max(0.0, min(1.0, value)), 2)
    return Markup(
        '<svg class="spark" viewBox="0 0 80 8" width="80" height="8" aria-hidden="true">'
        '<rect x="0" y="0" width="80" height="8" rx="2" fill="#eef1f4"/>'
        '<rect x="0" y="0" width="{}" height="8" rx="2" fill="#4e79a7"/></svg>'
    ).format(w)
