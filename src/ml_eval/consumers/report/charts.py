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
    CalibrationBin,
    ClassInterval,
    ClassMetric,
    ConfusionCell,
    Evaluation,
    HistoryPoint,
    Interval,
    LeaderboardRow,
    Named,
    PrPoint,
    RocPoint,
    RunComparison,
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


def class_bars(
    chart_id: str, run: Named, rows: Sequence[ClassMetric], intervals: dict[int, ClassInterval] | None = None
) -> Markup:
    """Grouped bars: precision, recall and F1 of each class, on a 0..1 axis; the recall's 95%
    Wilson interval as an error bar when `intervals` (fct_class_metrics) holds it."""
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
            interval = (intervals or {}).get(row.class_label)
            if (
                key == "recall"
                and interval
                and interval.recall_ci_low is not None
                and interval.recall_ci_high is not None
            ):
                low, high = interval.recall_ci_low, interval.recall_ci_high
                ends = [top + plot_h * (1 - max(0.0, min(1.0, v))) for v in (low, high)]
                cx = x0 + i * 22 + 10
                whisker = (
                    f"{run_label(run)}: class {row.name} recall {fmt(value, 6)}, "
                    f"95% Wilson interval [{fmt(low, 6)}, {fmt(high, 6)}]"
                )
                out.append(
                    Markup(
                        '<line class="mark whisker" x1="{0}" x2="{0}" y1="{1}" y2="{2}"{3}><title>{4}</title></line>'
                    ).format(
                        cx,
                        ends[0],
                        ends[1],
                        data_attrs(
                            run_uuid=run.run_uuid, class_label=row.class_label, recall_ci_low=low, recall_ci_high=high
                        ),
                        whisker,
                    )
                )
                for end in ends:
                    out.append(
                        Markup('<line class="cap" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/>').format(cx - 5, cx + 5, end)
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


# --- the evaluation's depth: curves, calibration, intervals, paired comparisons ----------------

# the classes' colours on a run's curves (not the runs' palette: these lines are classes of one run)
CLASS_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#c9a227", "#a6761d", "#666666")
BETTER, WORSE = "#2e8540", "#d1495b"  # the paired comparison's two counts


def fmt_p(value: float | None, digits: int = 3) -> str:
    """A p-value: fixed decimals, or in scientific notation when that would show zero."""
    if value is not None and 0 < value < 10**-digits:
        return f"{value:.{max(1, digits - 2)}e}"
    return fmt(value, digits)


def _class_title(name: str) -> str:
    """A class in a legend: `class 1` for an integer class, else its name."""
    return f"class {name}" if name.isdigit() else name


def class_colours(labels: Sequence[int]) -> dict[int, str]:
    """A colour per class label, by label order."""
    return {label: CLASS_PALETTE[i % len(CLASS_PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def _unit_square(left: int, top: int, size: int, x_title: str, y_title: str) -> list[Markup]:
    """Grid, ticks and axis titles of a 0..1 by 0..1 plot."""
    out = []
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x, y = left + size * tick, top + size * (1 - tick)
        out.append(Markup('<line class="grid" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/>').format(left, left + size, y))
        out.append(Markup('<line class="grid" x1="{0}" x2="{0}" y1="{1}" y2="{2}"/>').format(x, top, top + size))
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>').format(left - 6, y + 4, _tick(tick))
        )
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                x, top + size + 16, _tick(tick)
            )
        )
    out.append(
        Markup('<rect class="frame" x="{}" y="{}" width="{}" height="{}" fill="none"/>').format(left, top, size, size)
    )
    out.append(
        Markup('<text class="axis-title" x="{}" y="{}" text-anchor="middle">{}</text>').format(
            left + size / 2, top + size + 34, x_title
        )
    )
    out.append(
        Markup(
            '<text class="axis-title" transform="translate(14 {}) rotate(-90)" text-anchor="middle">{}</text>'
        ).format(top + size / 2, y_title)
    )
    return out


def _legend(items: Sequence[tuple[str, str]]) -> Markup:
    return Markup('<ul class="legend">{}</ul>').format(
        EMPTY.join(
            Markup('<li><span class="swatch" style="background:{}"></span>{}</li>').format(colour, text)
            for colour, text in items
        )
    )


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """A point of a class's curve: where it is drawn (None: undefined, kept off the plot) and
    what its mark carries."""

    x: float | None
    y: float | None
    tip: str
    attrs: Markup


def _curves(
    curves: Sequence[tuple[int, str, Sequence[CurvePoint]]],
    *,
    left: int,
    top: int,
    size: int,
    steps: bool = False,
) -> list[Markup]:
    """One line per class (`steps`: drawn as steps, each value held until the next point) and a
    mark per point; an undefined point stays in the DOM, off the plot."""

    def px(x: float) -> float:
        return round(left + size * x, 2)

    def py(y: float) -> float:
        return round(top + size * (1 - y), 2)

    out = []
    for _, colour, points in curves:
        drawn = [p for p in points if p.x is not None and p.y is not None]
        coords: list[str] = []
        for i, p in enumerate(drawn):
            if steps and i:
                coords.append(f"{px(p.x)},{py(drawn[i - 1].y)}")  # type: ignore[arg-type]
            coords.append(f"{px(p.x)},{py(p.y)}")  # type: ignore[arg-type]
        if len(drawn) > 1:
            out.append(
                Markup('<polyline class="curve" points="{}" fill="none" stroke="{}" stroke-width="2"/>').format(
                    " ".join(coords), colour
                )
            )
    for _, colour, points in curves:
        for p in points:
            if p.x is None or p.y is None:
                out.append(Markup('<g class="undrawn"{}><title>{}</title></g>').format(p.attrs, p.tip))
            else:
                out.append(
                    Markup(
                        '<circle class="mark point" cx="{}" cy="{}" r="2.6" fill="{}"{}><title>{}</title></circle>'
                    ).format(px(p.x), py(p.y), colour, p.attrs, p.tip)
                )
    return out


def _has_marks(curves: Sequence[tuple[int, str, Sequence[CurvePoint]]]) -> bool:
    return any(p.x is not None and p.y is not None for _, _, points in curves for p in points)


SQUARE = (52, 14, 230)  # left, top, size of the unit-square plots


def roc_chart(chart_id: str, run: Named, points: Sequence[RocPoint], names: dict[int, str]) -> Markup:
    """fct_roc_curve's points of a run: TPR against FPR, one line per class (one-vs-rest), the
    diagonal a classifier guessing at random."""
    left, top, size = SQUARE
    colours = class_colours([p.class_label for p in points])
    curves = []
    for label, colour in colours.items():
        name = names.get(label, str(label))
        curve = [
            CurvePoint(
                p.fpr,
                p.tpr,
                f"{run_label(run)}: class {name} threshold {fmt(p.threshold, 6)}: FPR {fmt(p.fpr, 6)}, "
                f"TPR {fmt(p.tpr, 6)} ({p.false_positives} FP, {p.true_positives} TP)",
                data_attrs(
                    curve="roc",
                    run_uuid=run.run_uuid,
                    class_label=label,
                    point_index=p.point_index,
                    threshold=p.threshold,
                    fpr=p.fpr,
                    tpr=p.tpr,
                    false_positives=p.false_positives,
                    true_positives=p.true_positives,
                ),
            )
            for p in points
            if p.class_label == label
        ]
        curves.append((label, colour, curve))
    if not _has_marks(curves):
        return Markup(
            '<p class="empty">No defined ROC point for {} (every class lacks positives or negatives).</p>'
        ).format(run_label(run))
    out = _unit_square(left, top, size, "false positive rate", "true positive rate")
    out.append(
        Markup('<line class="chance" x1="{}" y1="{}" x2="{}" y2="{}"/>').format(left, top + size, left + size, top)
    )
    out += _curves(curves, left=left, top=top, size=size)
    svg = _svg(left + size + 14, top + size + 44, out, f"ROC curves of {run_label(run)}")
    legend = _legend([(colour, _class_title(names.get(label, str(label)))) for label, colour, _ in curves])
    return figure(chart_id, "roc", "ROC curves", svg + legend, "one-vs-rest, per class")


def pr_chart(
    chart_id: str,
    run: Named,
    points: Sequence[PrPoint],
    names: dict[int, str],
    average_precision: dict[int, float | None],
) -> Markup:
    """fct_precision_recall_curve's points of a run: precision against recall, one line per
    class, drawn as steps (the average precision is their area, as scikit-learn sums it)."""
    left, top, size = SQUARE
    colours = class_colours([p.class_label for p in points])
    curves = []
    for label, colour in colours.items():
        name = names.get(label, str(label))
        curve = [
            CurvePoint(
                p.recall,
                p.precision,
                f"{run_label(run)}: class {name} threshold {fmt(p.threshold, 6)}: precision "
                f"{fmt(p.precision, 6)}, recall {fmt(p.recall, 6)}",
                data_attrs(
                    curve="precision-recall",
                    run_uuid=run.run_uuid,
                    class_label=label,
                    point_index=p.point_index,
                    threshold=p.threshold,
                    precision=p.precision,
                    recall=p.recall,
                ),
            )
            for p in points
            if p.class_label == label
        ]
        curves.append((label, colour, curve))
    if not _has_marks(curves):
        return Markup('<p class="empty">No defined precision-recall point for {}.</p>').format(run_label(run))
    out = _unit_square(left, top, size, "recall", "precision")
    out += _curves(curves, left=left, top=top, size=size, steps=True)
    svg = _svg(left + size + 14, top + size + 44, out, f"precision-recall curves of {run_label(run)}")
    items = []
    for label, colour, _ in curves:
        ap = average_precision.get(label)
        items.append(
            (colour, _class_title(names.get(label, str(label))) + ("" if ap is None else f" · AP {fmt(ap, 3)}"))
        )
    return figure(chart_id, "precision-recall", "Precision-recall curves", svg + _legend(items), "per class")


def reliability_chart(
    chart_id: str, run: Named, bins: Sequence[CalibrationBin], names: dict[int, str], summary: str = ""
) -> Markup:
    """fct_calibration_bins of a run: observed frequency against mean predicted probability per
    non-empty bin, one line per class; on the diagonal a run is calibrated."""
    left, top, size = SQUARE
    colours = class_colours([b.class_label for b in bins])
    curves = []
    for label, colour in colours.items():
        name = names.get(label, str(label))
        curve = [
            CurvePoint(
                b.mean_predicted_probability,
                b.observed_frequency,
                f"{run_label(run)}: class {name}, bin [{fmt(b.bin_lower, 1)}, {fmt(b.bin_upper, 1)}]: "
                f"{b.n_predictions} predictions, mean predicted {fmt(b.mean_predicted_probability, 6)}, "
                f"observed {fmt(b.observed_frequency, 6)}",
                data_attrs(
                    curve="calibration",
                    run_uuid=run.run_uuid,
                    class_label=label,
                    bin_index=b.bin_index,
                    bin_lower=b.bin_lower,
                    bin_upper=b.bin_upper,
                    n_predictions=b.n_predictions,
                    mean_predicted_probability=b.mean_predicted_probability,
                    observed_frequency=b.observed_frequency,
                ),
            )
            for b in bins
            if b.class_label == label
        ]
        curves.append((label, colour, curve))
    out = _unit_square(left, top, size, "mean predicted probability", "observed frequency")
    out.append(
        Markup('<line class="chance" x1="{}" y1="{}" x2="{}" y2="{}"/>').format(left, top + size, left + size, top)
    )
    out += _curves(curves, left=left, top=top, size=size)
    svg = _svg(left + size + 14, top + size + 44, out, f"reliability diagram of {run_label(run)}")
    legend = _legend([(colour, _class_title(names.get(label, str(label)))) for label, colour, _ in curves])
    return figure(
        chart_id,
        "reliability",
        "Reliability diagram",
        svg + legend,
        summary or "10 bins per class; the diagonal is perfect calibration",
    )


def interval_chart(chart_id: str, rows: Sequence[tuple[LeaderboardRow, Interval]], colours: dict[str, str]) -> Markup:
    """Accuracy of each listed run with its 95% Wilson interval as an error bar (fct_run_evaluation)."""
    left, top, plot_w, row_h, right = 210, 26, 340, 24, 150
    shown = [(row, iv) for row, iv in rows if iv.accuracy is not None]
    values = [v for _, iv in shown for v in (iv.accuracy_ci_low, iv.accuracy_ci_high, iv.accuracy) if v is not None]
    ticks = nice_ticks(max(0.0, min(values, default=0.0)), min(1.0, max(values, default=1.0)), 4)
    lo, hi = max(0.0, ticks[0]), min(1.0, ticks[-1])
    if hi <= lo:
        lo, hi = 0.0, 1.0
    ticks = [t for t in ticks if lo - 1e-12 <= t <= hi + 1e-12]

    def px(value: float) -> float:
        return round(left + plot_w * (value - lo) / (hi - lo), 2)

    height = top + row_h * len(shown) + 40
    out = [
        Markup(
            '<text class="axis-title" x="{}" y="14" text-anchor="middle">accuracy, 95% Wilson interval</text>'
        ).format(left + plot_w / 2)
    ]
    for tick in ticks:
        out.append(
            Markup('<line class="grid" x1="{0}" x2="{0}" y1="{1}" y2="{2}"/>').format(
                px(tick), top - 4, top + row_h * len(shown)
            )
        )
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>').format(
                px(tick), top + row_h * len(shown) + 16, _tick(tick)
            )
        )
    for r, (row, iv) in enumerate(shown):
        y = top + r * row_h + row_h / 2
        colour = colours.get(row.run_uuid, NO_COLOUR)
        low, high, accuracy = iv.accuracy_ci_low, iv.accuracy_ci_high, iv.accuracy
        name = run_label(row)
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="end">#{} {}</text>').format(
                left - 10, y + 4, row.group_rank, _short(name, 26)
            )
        )
        interval = "—" if low is None or high is None else f"[{fmt(low, 3)}, {fmt(high, 3)}]"
        tip = f"{name}: accuracy {fmt(accuracy, 6)}, 95% Wilson interval {interval} over {iv.n_predictions} predictions"
        ident = data_attrs(
            run_uuid=row.run_uuid,
            accuracy=accuracy,
            accuracy_ci_low=low,
            accuracy_ci_high=high,
            n_predictions=iv.n_predictions,
        )
        if low is not None and high is not None:
            out.append(
                Markup(
                    '<line class="mark whisker" x1="{0}" x2="{1}" y1="{2}" y2="{2}" stroke="{3}"{4}>'
                    "<title>{5}</title></line>"
                ).format(px(max(lo, low)), px(min(hi, high)), y, colour, data_attrs(run_uuid=row.run_uuid), tip)
            )
            for end in (low, high):
                out.append(
                    Markup('<line class="cap" x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="{3}"/>').format(
                        px(min(hi, max(lo, end))), y - 6, y + 6, colour
                    )
                )
        out.append(
            Markup(
                '<circle class="mark interval" cx="{}" cy="{}" r="4.5" fill="{}"{}><title>{}</title></circle>'
            ).format(px(min(hi, max(lo, accuracy))), y, colour, ident, tip)
        )
        out.append(
            Markup('<text class="value" x="{}" y="{}">{} {}</text>').format(
                left + plot_w + 12, y + 4, fmt(accuracy, 3), interval
            )
        )
    svg = _svg(left + plot_w + right, height, out, "accuracy with 95% Wilson intervals")
    return figure(chart_id, "intervals", "How sure is each accuracy", svg, "the bar spans the 95% Wilson interval")


def mcnemar_chart(
    chart_id: str,
    rows: Sequence[tuple[LeaderboardRow, RunComparison]],
    reference_names: dict[str, str],
) -> Markup:
    """Each run against its reference on the samples both predicted (fct_run_comparisons): to the
    right the samples only the run got right (b), to the left those only the reference got right
    (c), then the exact McNemar p-value and whether the run is better beyond chance."""
    left, top, half, row_h, right = 210, 40, 130, 26, 320
    largest = max((max(c.n_run_only_correct, c.n_reference_only_correct) for _, c in rows), default=0) or 1
    centre = left + 30 + half  # room for the count left of the longest bar
    height = top + row_h * len(rows) + 16
    out = [
        Markup('<text class="axis-title" x="{}" y="14" text-anchor="end">reference right, run wrong (c)</text>').format(
            centre - 6
        ),
        Markup(
            '<text class="axis-title" x="{}" y="14" text-anchor="start">run right, reference wrong (b)</text>'
        ).format(centre + 6),
        Markup('<text class="axis-title" x="{}" y="{}">exact McNemar p · verdict</text>').format(
            centre + half + 16, top - 12
        ),
        Markup('<line class="axis" x1="{0}" x2="{0}" y1="{1}" y2="{2}"/>').format(
            centre, top - 6, top + row_h * len(rows)
        ),
    ]
    for r, (row, c) in enumerate(rows):
        y = top + r * row_h
        name = run_label(row)
        b_count, c_count = c.n_run_only_correct, c.n_reference_only_correct
        reference = reference_names.get(c.reference_run_uuid, c.reference_run_uuid[:8])
        ident = data_attrs(
            run_uuid=row.run_uuid,
            reference_run_uuid=c.reference_run_uuid,
            reference_kind=c.reference_kind,
            n_paired=c.n_paired,
            n_run_only_correct=b_count,
            n_reference_only_correct=c_count,
            mcnemar_p_value=c.mcnemar_p_value,
            is_better_beyond_chance=c.is_better_beyond_chance,
        )
        verdict = (
            "—"
            if c.is_better_beyond_chance is None
            else "better beyond chance"
            if c.is_better_beyond_chance
            else "not better beyond chance"
        )
        tip = (
            f"{name} against {reference} ({c.reference_kind}) on {c.n_paired} paired samples: "
            f"{b_count} only the run got right, {c_count} only the reference; "
            f"exact McNemar p = {fmt_p(c.mcnemar_p_value, 6)}: {verdict}"
        )
        out.append(
            Markup('<text class="tick" x="{}" y="{}" text-anchor="end">#{} {}</text>').format(
                left - 10, y + 16, row.group_rank, _short(name, 26)
            )
        )
        wb, wc = half * b_count / largest, half * c_count / largest
        out.append(
            Markup(
                '<rect class="mark bar" x="{}" y="{}" width="{}" height="14" rx="2" fill="{}"'
                ' data-side="reference_only"{}><title>{}</title></rect>'
            ).format(centre - wc, y + 5, wc, WORSE, ident, tip)
        )
        out.append(
            Markup(
                '<rect class="mark bar" x="{}" y="{}" width="{}" height="14" rx="2" fill="{}"'
                ' data-side="run_only"{}><title>{}</title></rect>'
            ).format(centre, y + 5, wb, BETTER, ident, tip)
        )
        out.append(
            Markup('<text class="value" x="{}" y="{}" text-anchor="end">{}</text>').format(
                centre - wc - 4, y + 16, c_count
            )
        )
        out.append(Markup('<text class="value" x="{}" y="{}">{}</text>').format(centre + wb + 4, y + 16, b_count))
        mark = "✓ " if c.is_better_beyond_chance else ""
        out.append(
            Markup('<text class="{}" x="{}" y="{}">p = {} · {}{}</text>').format(
                "verdict better" if c.is_better_beyond_chance else "verdict",
                centre + half + 16,
                y + 16,
                fmt_p(c.mcnemar_p_value),
                mark,
                verdict,
            )
        )
    svg = _svg(centre + half + right, height, out, "paired comparison with the reference run")
    return figure(
        chart_id,
        "mcnemar",
        "Against the reference, sample by sample",
        svg,
        "counts of the samples the two runs disagree on",
    )
