"""The evaluation report (`ml-eval report`), opened in headless Chromium.

The report is rendered from the session's built database; Chromium loads it offline, its
inline script records how many marks each chart drew, and the DOM Chromium dumps is compared
number by number with the marts, queried here with their own SQL. A screenshot is kept in
target/report/report.png. Chromium (the Debian package) is installed when missing; if that
fails, the tests fail saying so.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC
from html.parser import HTMLParser
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from conftest import CONFIG, PROJECT_DIR, clone_database, drop_database
from ml_eval import warehouse as wh
from ml_eval.consumers.report import build_report
from ml_eval.consumers.report import data as report_data
from ml_eval.consumers.report import page as report_page

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # the page must need no network
]
SCREENSHOT = PROJECT_DIR / "target" / "report" / "report.png"
WINDOW = (1400, 3000)
SCHEMA = CONFIG.published_schema  # ML_EVAL_PUBLISHED_SCHEMA, default published


def ensure_chromium() -> Path:
    """/usr/bin/chromium, installed with apt-get when missing; RuntimeError saying why not."""
    if CHROMIUM.exists():
        return CHROMIUM
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"cannot install Chromium: `{' '.join(step)}` failed: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(
                f"cannot install Chromium: `{' '.join(step)}` exited {done.returncode} "
                f"(root needed?): {' / '.join(tail)}"
            )
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium() -> Path:
    try:
        return ensure_chromium()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def run_chromium(browser: Path, page: Path, *args: str) -> str:
    """Run headless Chromium on a file with a fresh profile; its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = subprocess.run(
            [str(browser), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


class Elements(HTMLParser):
    """Every start tag of a document, as (tag, attributes)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def select(self, tag: str | None = None, **wanted: str) -> list[dict]:
        """Attributes of the elements with the tag and attribute values (`data_x` = data-x)."""
        keys = {k.replace("_", "-"): v for k, v in wanted.items()}
        return [
            attrs
            for name, attrs in self.found
            if (tag is None or name == tag) and all(attrs.get(k) == v for k, v in keys.items())
        ]


class Texts(HTMLParser):
    """The text content of every element of a document, as (tag, attributes, text), in order."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    )

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.open: list[tuple[str, list[str]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        parts: list[str] = []
        self.found.append((tag, dict(attrs), parts))
        if tag not in self.VOID:
            self.open.append((tag, parts))

    def handle_startendtag(self, tag, attrs):
        self.found.append((tag, dict(attrs), []))

    def handle_endtag(self, tag):
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, parts in self.open:
            parts.append(data)

    def text(self, tag: str, css_class: str | None = None) -> list[str]:
        """The text of each element with the tag (and the class among its classes)."""
        return [
            "".join(parts)
            for name, attrs, parts in self.found
            if name == tag and (css_class is None or css_class in (attrs.get("class") or "").split())
        ]


@dataclasses.dataclass
class SectionDom:
    """A group's section of the page, as start tags: its own attributes, its leaderboard rows,
    its champion-against-runner-up table and the runs of its cards."""

    attrs: dict
    rows: list[dict] = dataclasses.field(default_factory=list)
    versus: list[dict] = dataclasses.field(default_factory=list)
    cards: list[str] = dataclasses.field(default_factory=list)
    values: list[dict] = dataclasses.field(default_factory=list)  # the compared metrics' cells and bars
    depth: list[dict] = dataclasses.field(default_factory=list)  # curve points, interval dots, comparison bars


def group_sections(dom: Elements) -> list[SectionDom]:
    """The page's group sections in page order (sections do not nest: a tag belongs to the
    last section opened before it)."""
    found: list[SectionDom] = []
    current: SectionDom | None = None
    for tag, attrs in dom.found:
        if tag == "section":
            current = SectionDom(attrs) if "group" in (attrs.get("class") or "").split() else None
            if current is not None:
                found.append(current)
        elif current is None:
            continue
        elif tag == "tr" and attrs.get("data-group-rank"):
            current.rows.append(attrs)
        elif tag == "table" and "versus" in (attrs.get("class") or "").split():
            current.versus.append(attrs)
        elif tag == "article":
            current.cards.append(attrs["data-run-uuid"])
        elif "data-metric" in attrs and "data-value" in attrs and "data-class-label" not in attrs:
            current.values.append(attrs)
        if current is not None and ({"data-curve", "data-side", "data-accuracy-ci-low"} & set(attrs)):
            current.depth.append(attrs)
    return found


def group_key(row: dict) -> tuple:
    """A leaderboard row's group, as the page orders them: registered models, then
    experiments, by name, then by dataset name."""
    kind = report_data.GROUP_KINDS.index(row["group_kind"])
    return (kind, row["group_kind"], row["group_name"], row["dataset_name"], row["dataset_id"])


def by_group(leaderboard: list[dict]) -> dict[tuple, list[dict]]:
    """The mart's rows by group in page order, each group's by group_rank, start, run_uuid."""
    grouped: dict[tuple, list[dict]] = {}
    for row in sorted(leaderboard, key=lambda r: (group_key(r), r["group_rank"], r["started_at"], r["run_uuid"])):
        grouped.setdefault(group_key(row), []).append(row)
    return grouped


def headline(rows: list[dict]) -> dict:
    """A group's champion, else its top ranked run."""
    return next((r for r in rows if r["is_champion"]), rows[0])


# the charts of each top run drawn from a depth mart, by chart kind
DEPTH_CHARTS = {
    "roc": "fct_roc_curve",
    "precision-recall": "fct_precision_recall_curve",
    "reliability": "fct_calibration_bins",
}


def query(database: wh.Warehouse, text: str) -> list[dict]:
    with psycopg.connect(database.conninfo(), row_factory=dict_row) as conn:
        return conn.execute(text.replace("{schema}", f'"{SCHEMA}"')).fetchall()


def number(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


# --- fixtures: the built database, its report, and the DOM Chromium rendered -----------------


@pytest.fixture(scope="module")
def page(built: wh.Warehouse, tmp_path_factory) -> Path:
    return build_report(built, schema=SCHEMA, out_path=tmp_path_factory.mktemp("report") / "index.html")


@pytest.fixture(scope="module")
def dom(chromium: Path, page: Path) -> Elements:
    return Elements(run_chromium(chromium, page, "--dump-dom"))


@pytest.fixture(scope="module")
def leaderboard(built: wh.Warehouse) -> list[dict]:
    rows = query(built, "select * from {schema}.rpt_model_leaderboard order by experiment_rank")
    assert rows, "the built database has no evaluated run: nothing to report"
    return rows


@pytest.fixture(scope="module")
def shown_runs(dom: Elements) -> list[str]:
    """The runs with a confusion matrix and class bars on the page."""
    return [card["data-run-uuid"] for card in dom.select("article")]


# --- the page ---------------------------------------------------------------------------


def test_page_is_self_contained(page: Path):
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text), "the report must not reference the network"
    assert not re.search(r"<(link|img|iframe)\b|\bsrc\s*=|@import|url\(", text)
    assert text.count("<script>") == 1  # the inline check, no external script


def test_every_chart_drew_its_marks(dom: Elements, leaderboard: list[dict], built: wh.Warehouse):
    body = dom.select("body")[0]
    figures = dom.select("figure")
    assert figures and body["data-charts"] == str(len(figures))
    undrawn = {f["data-chart"]: f.get("data-render-error") for f in figures if f.get("data-render-error")}
    assert not undrawn, f"charts that did not draw: {undrawn}"
    assert body["data-charts-rendered"] == str(len(figures))
    for figure in figures:
        assert int(figure["data-rendered"]) == int(figure["data-marks"]) > 0, figure
    kinds = Counter(f["data-kind"] for f in figures)
    groups = by_group(leaderboard).values()
    shown = sum(min(report_data.TOP_RUNS, len(rows)) for rows in groups)
    series = query(
        built,
        "select distinct metric_key from {schema}.fct_metric_history"
        " group by run_uuid, metric_key having count(distinct step) > 1",
    )
    featured = [run_uuid for section in group_sections(dom) for run_uuid in section.cards]
    curves = {
        kind: len(
            set(featured) & {r["run_uuid"] for r in query(built, f"select distinct run_uuid from {{schema}}.{mart}")}
        )
        for kind, mart in DEPTH_CHARTS.items()
    }
    compared = {r["run_uuid"] for r in query(built, "select run_uuid from {schema}.fct_run_comparisons")}
    assert (
        kinds
        == Counter(
            {
                "heatmap": shown,
                "class-bars": shown,
                "history": len(series),
                "comparison": sum(len(rows) > 1 for rows in groups),
                **curves,
                "intervals": len(groups),
                "mcnemar": sum(any(r["run_uuid"] in compared for r in rows) for rows in groups),
            }
        )
        - Counter()
    )
    assert curves["roc"] == curves["precision-recall"] == curves["reliability"] == shown, "every top run has curves"


def test_leaderboard_equals_rpt_model_leaderboard(dom: Elements, leaderboard: list[dict]):
    """One section per group of the mart, in the documented order, each with the group's rows."""
    sections = group_sections(dom)
    groups = by_group(leaderboard)
    shown = [tuple(x.attrs[f"data-{key}"] for key in ("group-kind", "group-name", "dataset-name")) for x in sections]
    assert shown == [(kind, name, dataset) for _, kind, name, dataset, _ in groups]
    for section, rows in zip(sections, groups.values(), strict=True):
        assert section.attrs["data-headline"] == headline(rows)["run_uuid"]
        assert [r["data-run-uuid"] for r in section.rows] == [r["run_uuid"] for r in rows]
        for shown, mart in zip(section.rows, rows, strict=True):
            assert int(shown["data-group-rank"]) == mart["group_rank"]
            assert int(shown["data-experiment-rank"]) == mart["experiment_rank"]
            assert shown["data-is-champion"] == str(mart["is_champion"]).lower()
            for column in ("f1_macro", "accuracy", "log_loss", "roc_auc"):
                assert number(shown[f"data-{column.replace('_', '-')}"]) == mart[column], column
            agrees = mart["agrees_with_mlflow"]
            assert shown["data-agrees-with-mlflow"] == ("" if agrees is None else str(agrees).lower())
    overview = [r for r in dom.select("tr") if r.get("data-headline")]
    assert [r["data-headline"] for r in overview] == [headline(rows)["run_uuid"] for rows in groups.values()]


def test_champion_and_top_runs_have_their_confusion_matrix(
    dom: Elements, shown_runs: list[str], leaderboard: list[dict], built: wh.Warehouse
):
    for section, rows in zip(group_sections(dom), by_group(leaderboard).values(), strict=True):
        champions = [r["run_uuid"] for r in rows if r["is_champion"]]
        assert section.cards[0] == headline(rows)["run_uuid"]
        assert set(section.cards) >= {r["run_uuid"] for r in rows[: report_data.TOP_RUNS - len(champions)]}
    assert any(r["is_champion"] for r in leaderboard), "the demo crowns a champion"
    mart = query(
        built,
        "select run_uuid, actual_class, predicted_class, n, actual_class_name, predicted_class_name"
        " from {schema}.fct_confusion_matrix",
    )
    columns = ("actual_class", "predicted_class", "n", "actual_class_name", "predicted_class_name")
    for run_uuid in shown_runs:
        cells = [c for c in dom.select("rect", data_run_uuid=run_uuid) if "data-n" in c]
        on_page = {tuple(c[f"data-{k.replace('_', '-')}"] for k in columns) for c in cells}
        of_run = [r for r in mart if r["run_uuid"] == run_uuid]
        expected = {tuple("" if r[k] is None else str(r[k]) for k in columns) for r in of_run}
        assert on_page == expected and len(cells) == len(expected), run_uuid


def test_class_bars_equal_fct_class_metrics(dom: Elements, shown_runs: list[str], built: wh.Warehouse):
    mart = query(
        built, "select run_uuid, class_label, class_name, precision, recall, f1 from {schema}.fct_class_metrics"
    )
    for run_uuid in shown_runs:
        bars = [b for b in dom.select("rect", data_run_uuid=run_uuid) if "data-class-label" in b]
        on_page = {
            (int(b["data-class-label"]), b["data-class-name"], b["data-metric"]): float(b["data-value"]) for b in bars
        }
        expected = {
            (r["class_label"], r["class_name"] or "", metric): r[metric]
            for r in mart
            if r["run_uuid"] == run_uuid
            for metric in ("precision", "recall", "f1")
        }
        assert on_page == expected and len(bars) == len(expected), run_uuid


def test_history_lines_equal_fct_metric_history(dom: Elements, built: wh.Warehouse):
    mart = query(
        built,
        "select run_uuid, metric_key, step, metric_value from {schema}.fct_metric_history"
        " where (run_uuid, metric_key) in (select run_uuid, metric_key from {schema}.fct_metric_history"
        " group by 1, 2 having count(distinct step) > 1)",
    )
    points = [p for p in dom.select() if "data-step" in p and "data-metric-key" in p]
    on_page = Counter(
        (p["data-run-uuid"], p["data-metric-key"], int(p["data-step"]), number(p["data-value"])) for p in points
    )
    expected = Counter((r["run_uuid"], r["metric_key"], r["step"], r["metric_value"]) for r in mart)
    assert on_page == expected
    lines = {(p["data-run-uuid"], p["data-metric-key"]) for p in dom.select("polyline") if "data-metric-key" in p}
    assert lines == {(r["run_uuid"], r["metric_key"]) for r in mart if r["metric_value"] is not None}


def test_champion_against_runner_up_equals_fct_run_evaluation(
    dom: Elements, leaderboard: list[dict], built: wh.Warehouse
):
    if len(leaderboard) < 2:
        pytest.fail("the built database should hold several evaluated runs")
    evaluation = {r["run_uuid"]: r for r in query(built, "select * from {schema}.fct_run_evaluation")}
    metrics = [key for key, _, _ in report_data.COMPARED]
    compared = 0
    for section, rows in zip(group_sections(dom), by_group(leaderboard).values(), strict=True):
        if len(rows) < 2:
            assert not section.versus and not section.values
            continue
        compared += 1
        champion = headline(rows)
        runner_up = next(r for r in rows if r["run_uuid"] != champion["run_uuid"])
        assert [(v["data-champion"], v["data-runner-up"]) for v in section.versus] == [
            (champion["run_uuid"], runner_up["run_uuid"])
        ]
        # the table's cells and the paired bars: each names its run and metric
        assert Counter(e["data-metric"] for e in section.values) == Counter(
            {key: 4 if key in report_data.BOUNDED else 2 for key in metrics}
        )
        for element in section.values:
            run_uuid, key = element["data-run-uuid"], element["data-metric"]
            assert run_uuid in (champion["run_uuid"], runner_up["run_uuid"])
            assert number(element["data-value"]) == evaluation[run_uuid][key], (run_uuid, key)
    assert compared


# --- the evaluation's depth: curves, calibration, intervals, paired comparisons ---------------

# each curve's marks: the data-curve value, the mart, its columns (the first three identify a point)
CURVES = {
    "roc": (
        "fct_roc_curve",
        ("run_uuid", "class_label", "point_index", "threshold", "fpr", "tpr", "false_positives", "true_positives"),
    ),
    "precision-recall": (
        "fct_precision_recall_curve",
        ("run_uuid", "class_label", "point_index", "threshold", "precision", "recall"),
    ),
    "calibration": (
        "fct_calibration_bins",
        (
            "run_uuid",
            "class_label",
            "bin_index",
            "bin_lower",
            "bin_upper",
            "n_predictions",
            "mean_predicted_probability",
            "observed_frequency",
        ),
    ),
}


def _value(text: str | None, like: object) -> object:
    """A data attribute read back as the type of the mart's value (text of ints stays exact)."""
    if text in (None, ""):
        return None
    if isinstance(like, bool):
        return text == "true"
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)  # repr round-trips; 'inf' is the ROC curve's first threshold
    return text


def curve_mismatches(dom: Elements, mart_rows: list[dict], curve: str, columns: tuple[str, ...], runs: list[str]):
    """The differences between a curve's marks on the page and the mart's rows of the shown
    runs, as (on the page only, in the mart only); both empty when they are equal."""
    marks = [m for m in dom.select(data_curve=curve) if m["data-run-uuid"] in runs]
    rows = [r for r in mart_rows if r["run_uuid"] in runs]
    like = {c: next((r[c] for r in rows if r[c] is not None), None) for c in columns}
    on_page = Counter(tuple(_value(m.get(f"data-{c.replace('_', '-')}"), like[c]) for c in columns) for m in marks)
    expected = Counter(tuple(r[c] for c in columns) for r in rows)
    return on_page - expected, expected - on_page


@pytest.mark.parametrize("curve", CURVES)
def test_curves_equal_their_marts(curve: str, dom: Elements, shown_runs: list[str], built: wh.Warehouse):
    """Every point of the top runs' ROC and precision-recall curves and every reliability bin
    is on the page with the mart's exact values; a point is drawn when it is defined."""
    mart, columns = CURVES[curve]
    rows = query(built, f"select {', '.join(columns)} from {{schema}}.{mart}")
    assert {r["run_uuid"] for r in rows} >= set(shown_runs), f"{mart} lacks a top run"
    assert curve_mismatches(dom, rows, curve, columns, shown_runs) == (Counter(), Counter())
    x, y = {"roc": ("fpr", "tpr"), "precision-recall": ("recall", "precision"), "calibration": (
        "mean_predicted_probability", "observed_frequency")}[curve]  # fmt: skip
    for tag, attrs in dom.found:
        if attrs.get("data-curve") == curve:
            defined = attrs[f"data-{x.replace('_', '-')}"] != "" and attrs[f"data-{y.replace('_', '-')}"] != ""
            assert (tag == "circle") == defined, attrs


def test_curve_check_fails_on_a_wrong_point(built: wh.Warehouse, chromium: Path, tmp_path: Path):
    """The comparison above can fail: one TPR and one observed frequency changed, one PR point
    dropped, and each curve's check reports it."""
    read = report_data.load(built, SCHEMA)
    depth = read.depth
    assert depth.roc and depth.precision_recall and depth.calibration, "the built schema holds the depth marts"
    run = report_data.featured_runs(report_data.groups(read.leaderboard)[0])[0].run_uuid
    roc, pr, bins = list(depth.roc[run]), list(depth.precision_recall[run]), list(depth.calibration[run])
    roc[-1] = dataclasses.replace(roc[-1], tpr=(roc[-1].tpr or 0) / 2 + 0.01)
    bins[0] = dataclasses.replace(bins[0], observed_frequency=bins[0].observed_frequency + 1e-9)
    tampered = dataclasses.replace(
        depth,
        roc={**depth.roc, run: roc},
        precision_recall={**depth.precision_recall, run: pr[1:]},
        calibration={**depth.calibration, run: bins},
    )
    page = tmp_path / "tampered.html"
    page.write_text(report_page.render(dataclasses.replace(read, depth=tampered)), encoding="utf-8")
    wrong = Elements(run_chromium(chromium, page, "--dump-dom"))
    for curve, (mart, columns) in CURVES.items():
        rows = query(built, f"select {', '.join(columns)} from {{schema}}.{mart}")
        assert curve_mismatches(wrong, rows, curve, columns, [run]) != (Counter(), Counter()), curve


def test_accuracy_intervals_equal_fct_run_evaluation(dom: Elements, leaderboard: list[dict], built: wh.Warehouse):
    """Each section's error bars: every listed run, in rank order, with fct_run_evaluation's
    accuracy and 95% Wilson interval; each top run's card states its calibration summary."""
    evaluation = {r["run_uuid"]: r for r in query(built, "select * from {schema}.fct_run_evaluation")}
    sections = group_sections(dom)
    points = [p for p in dom.select("circle") if "data-accuracy-ci-low" in p]
    groups = by_group(leaderboard)
    assert [p["data-run-uuid"] for p in points] == [r["run_uuid"] for rows in groups.values() for r in rows]
    for point in points:
        mart = evaluation[point["data-run-uuid"]]
        for column in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "n_predictions"):
            assert _value(point[f"data-{column.replace('_', '-')}"], mart[column]) == mart[column], column
        assert mart["accuracy_ci_low"] <= mart["accuracy"] <= mart["accuracy_ci_high"]
    cards = {p["data-run-uuid"]: p for p in dom.select("p") if "data-brier-score" in p}
    assert sorted(cards) == sorted(run for section in sections for run in section.cards)
    summary = ("accuracy_ci_low", "accuracy_ci_high", "average_precision_macro", "brier_score",
               "expected_calibration_error", "top_2_accuracy")  # fmt: skip
    for run_uuid, shown in cards.items():
        for column in summary:
            mart = evaluation[run_uuid][column]
            assert _value(shown[f"data-{column.replace('_', '-')}"], mart) == mart, (run_uuid, column)


def test_recall_intervals_equal_fct_class_metrics(dom: Elements, shown_runs: list[str], built: wh.Warehouse):
    mart = query(built, "select run_uuid, class_label, recall_ci_low, recall_ci_high from {schema}.fct_class_metrics")
    whiskers = [w for w in dom.select("line") if "data-recall-ci-low" in w]
    on_page = Counter(
        (
            w["data-run-uuid"],
            int(w["data-class-label"]),
            float(w["data-recall-ci-low"]),
            float(w["data-recall-ci-high"]),
        )
        for w in whiskers
    )
    expected = Counter(
        (r["run_uuid"], r["class_label"], r["recall_ci_low"], r["recall_ci_high"])
        for r in mart
        if r["run_uuid"] in shown_runs and r["recall_ci_low"] is not None
    )
    assert on_page == expected and expected


def test_comparisons_equal_fct_run_comparisons(dom: Elements, leaderboard: list[dict], built: wh.Warehouse):
    """Each section's paired comparison: every run of the group with a row in
    fct_run_comparisons (against the champion when it has one), its two counts as two bars, each
    carrying the mart's row; the reference is the leaderboard's reference_run_uuid."""
    columns = ("reference_run_uuid", "reference_kind", "n_paired", "n_run_only_correct",
               "n_reference_only_correct", "mcnemar_p_value", "is_better_beyond_chance")  # fmt: skip
    mart: dict[str, list[dict]] = {}
    for row in query(built, "select * from {schema}.fct_run_comparisons"):
        mart.setdefault(row["run_uuid"], []).append(row)
    bars = [b for b in dom.select("rect") if b.get("data-side")]
    assert bars, "no paired comparison on the page"
    expected_runs = []
    for rows in by_group(leaderboard).values():
        for row in rows:
            found = sorted(
                mart.get(row["run_uuid"], []),
                key=lambda c: (c["reference_kind"] != "champion", c["reference_run_uuid"]),
            )
            if found and found[0]["reference_run_uuid"] != row["run_uuid"]:
                expected_runs.append((row, found[0]))
    assert [(b["data-run-uuid"], b["data-side"]) for b in bars] == [
        (row["run_uuid"], side) for row, _ in expected_runs for side in ("reference_only", "run_only")
    ]
    by_run = {row["run_uuid"]: (row, comparison) for row, comparison in expected_runs}
    for bar in bars:
        row, comparison = by_run[bar["data-run-uuid"]]
        for column in columns:
            assert _value(bar[f"data-{column.replace('_', '-')}"], comparison[column]) == comparison[column], column
        assert comparison["reference_run_uuid"] == row["reference_run_uuid"]
        assert comparison["mcnemar_p_value"] == row["mcnemar_p_value"]
        assert comparison["n_run_only_correct"] + comparison["n_reference_only_correct"] <= comparison["n_paired"]


def test_a_schema_without_the_depth_marts_says_so(chromium: Path, built: wh.Warehouse, tmp_path: Path):
    """A schema published before the depth marts: the report is still written, its other
    charts draw, and each section names the marts and columns it lacks."""
    copy = clone_database(built, f"{built.database}_no_depth")
    try:
        with copy.connect(autocommit=True) as conn:
            for mart in report_data.DEPTH_MARTS:
                conn.execute(sql.SQL("drop table if exists {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(mart)))
            for table, added in report_data.INTERVAL_COLUMNS.items():
                for column in added:
                    conn.execute(
                        sql.SQL("alter table {}.{} drop column if exists {} cascade").format(
                            sql.Identifier(SCHEMA), sql.Identifier(table), sql.Identifier(column)
                        )
                    )
        page = build_report(copy, schema=SCHEMA, out_path=tmp_path / "index.html")
    finally:
        drop_database(copy)
    old = Elements(run_chromium(chromium, page, "--dump-dom"))
    body = old.select("body")[0]
    assert body["data-charts-rendered"] == body["data-charts"] != "0"
    assert not {f["data-kind"] for f in old.select("figure")} & {*DEPTH_CHARTS, "intervals", "mcnemar"}
    notes = [p["data-missing"].split() for p in old.select("p") if "data-missing" in p]
    assert len(notes) == len(group_sections(old)) > 0
    assert all(
        set(note) == {*report_data.DEPTH_MARTS, "fct_run_evaluation.accuracy_ci_low", "fct_class_metrics.recall_ci_low"}
        for note in notes
    )
    assert not [p for p in old.select("p") if "data-brier-score" in p]


def test_provenance_lists_every_run_with_its_times(dom: Elements, built: wh.Warehouse):
    runs = query(
        built, "select run_uuid, experiment_name, started_at, ended_at, registered_versions from {schema}.dim_runs"
    )
    rows = {r["data-run-uuid"]: r for r in dom.select("tr") if "data-started-at" in r}
    assert set(rows) == {r["run_uuid"] for r in runs}
    for run in runs:
        shown = rows[run["run_uuid"]]
        for column in ("started_at", "ended_at"):
            value = run[column] and run[column].astimezone(UTC).isoformat()
            assert shown[f"data-{column.replace('_', '-')}"] == (value or ""), column
        assert shown["data-experiment-name"] == run["experiment_name"]
        assert shown["data-registered-versions"] == (run["registered_versions"] or "")


def test_screenshot_shows_the_page(chromium: Path, page: Path):
    from PIL import Image  # pillow comes with MLflow (requirements.lock)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    run_chromium(
        chromium, page, f"--screenshot={SCREENSHOT}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars"
    )
    with Image.open(SCREENSHOT) as image:
        assert image.size == WINDOW
        colours = image.convert("RGB").resize((350, 750)).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 200, "the screenshot is nearly blank"


# --- escaping, the command line, the schema ---------------------------------------------------

HOSTILE = '<img src=x onerror="alert(1)"> & "quoted" \'single\' </td><b>bold</b>'


def test_text_from_the_database_is_escaped(chromium: Path, built: wh.Warehouse, tmp_path: Path):
    read = report_data.load(built, SCHEMA)
    hostile = {"run_name": HOSTILE, "experiment_name": HOSTILE}
    named = {"model_family": HOSTILE, "group_name": HOSTILE, "dataset_name": HOSTILE, "registered_model_name": HOSTILE}
    read = dataclasses.replace(
        read,
        leaderboard=[dataclasses.replace(r, **named, **hostile) for r in read.leaderboard],
        evaluations={k: dataclasses.replace(r, **hostile) for k, r in read.evaluations.items()},
        runs=[dataclasses.replace(r, **hostile) for r in read.runs],
    )
    text = report_page.render(read)
    assert "<img" not in text and "<b>" not in text and "</td><b>" not in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in text
    page = tmp_path / "hostile.html"
    page.write_text(text, encoding="utf-8")
    dumped = run_chromium(chromium, page, "--dump-dom")
    rendered, texts = Elements(dumped), Texts(dumped)
    assert not rendered.select("img") and not rendered.select("b")
    # the group's and the dataset's names, as text, in the overview and in the section's heading
    assert HOSTILE in texts.text("span", "group-name") and HOSTILE in texts.text("td", "dataset-name")
    assert all(s.attrs["data-group-name"] == HOSTILE for s in group_sections(rendered))
    assert rendered.select("body")[0]["data-charts-rendered"] == rendered.select("body")[0]["data-charts"]


HTML_NAME = """<script>alert(1)</script> "&'"""


@pytest.fixture
def html_named(built: wh.Warehouse) -> tuple[wh.Warehouse, str]:
    """A copy of the built database whose champion's run name, in every published mart that
    holds run names, is HTML_NAME; and that run's run_uuid."""
    copy = clone_database(built, f"{built.database}_html_name")
    try:
        with copy.connect(autocommit=True) as conn:
            champion = conn.execute(
                sql.SQL("select run_uuid from {}.rpt_model_leaderboard where is_champion").format(
                    sql.Identifier(SCHEMA)
                )
            ).fetchone()
            assert champion, "the built database has no champion"
            marts = conn.execute(
                "select table_name from information_schema.columns"
                " where table_schema = %s and column_name = 'run_name'",
                (SCHEMA,),
            ).fetchall()
            assert {"rpt_model_leaderboard", "fct_run_evaluation", "dim_runs"} <= {name for (name,) in marts}
            for (name,) in marts:
                conn.execute(
                    sql.SQL("update {}.{} set run_name = %s where run_uuid = %s").format(
                        sql.Identifier(SCHEMA), sql.Identifier(name)
                    ),
                    (HTML_NAME, champion[0]),
                )
        yield copy, champion[0]
    finally:
        drop_database(copy)


def test_a_run_name_holding_html_is_shown_escaped(chromium: Path, html_named: tuple[wh.Warehouse, str], tmp_path: Path):
    """The name comes from the published marts (as MLflow would hand it over): the page shows
    it as text, escaped once, wherever it names the run, and runs no script but its own."""
    database, champion = html_named
    page = build_report(database, schema=SCHEMA, out_path=tmp_path / "index.html")
    text = page.read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in text and text.count("<script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&amp;&#39;" in text
    assert "&amp;amp;" not in text and "&amp;lt;" not in text  # escaped once, not twice

    dumped = run_chromium(chromium, page, "--dump-dom")
    texts, elements = Texts(dumped), Elements(dumped)
    assert len(elements.select("script")) == 1
    body = elements.select("body")[0]
    assert body["data-charts-rendered"] == body["data-charts"] != "0"
    # the leaderboard, the group's headline tile, the comparison's heading, the card and the provenance row
    assert HTML_NAME in texts.text("span", "run-name")
    assert HTML_NAME in texts.text("div", "v")
    assert HTML_NAME in texts.text("div", "sub")
    heading = rf"#\d+ {re.escape(HTML_NAME)} ★ champion"
    assert sum(bool(re.fullmatch(heading, h)) for h in texts.text("h4")) == 1, texts.text("h4")
    assert any(t.startswith(HTML_NAME) and champion in t for t in texts.text("td", "nowrap"))
    # the tooltips of the champion's confusion matrix name it too
    tips = texts.text("title")
    assert (
        sum(t.startswith(f"{HTML_NAME}: actual ") for t in tips)
        == len([c for c in elements.select("rect", data_run_uuid=champion) if "data-n" in c])
        > 0
    )


def test_command_line_writes_the_report(built: wh.Warehouse, tmp_path: Path):
    out = tmp_path / "cli" / "index.html"
    env = {**os.environ, **built.env()}
    done = subprocess.run(
        [sys.executable, "-m", "ml_eval", "report", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {out}" and out.stat().st_size > 10_000

    missing = subprocess.run(
        [sys.executable, "-m", "ml_eval", "report", "--out", str(tmp_path / "x" / "x.html")],
        env={**env, "ML_EVAL_PUBLISHED_SCHEMA": "no_such_schema"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and not (tmp_path / "x").exists()
    assert "'no_such_schema'" in missing.stderr and "rpt_model_leaderboard" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_report_command_is_registered_with_its_defaults():
    from ml_eval import cli

    args = cli.parser().parse_args(["report", "--out", "somewhere.html"])
    assert args.handler is cli.cmd_report and args.out == Path("somewhere.html")
    assert cli.parser().parse_args(["report"]).out is None  # then target/report/index.html of the project


def test_exposure_lists_the_marts_the_report_reads():
    import yaml  # comes with dbt

    exposures = yaml.safe_load((PROJECT_DIR / "models" / "marts" / "_exposures.yml").read_text())["exposures"]
    page = next(e for e in exposures if e["name"] == "evaluation_report")
    assert page["type"] == "dashboard" and "target/report/index.html" in page["url"]
    read = (*report_data.MARTS, *report_data.DEPTH_MARTS)
    assert sorted(page["depends_on"]) == sorted(f"ref('{name}')" for name in read)
