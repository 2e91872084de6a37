"""The docs a user opens: `dbt docs generate --static` over the built database, in headless Chromium.

dbt docs is an Angular app whose lineage graph cytoscape draws on canvases, so the graph is
read from the page itself: cytoscape keeps its instance on its container element
(`element._cyreg.cy`), and the DevTools protocol evaluates JavaScript there. A screenshot
of the full lineage view is kept as target/docs_lineage.png.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from conftest import PROJECT_DIR
from ml_eval import rules
from ml_eval import warehouse as wh
from support import browser

SCREENSHOT = PROJECT_DIR / "target" / "docs_lineage.png"
MARTS = [
    "fct_predictions",
    "fct_confusion_matrix",
    "fct_class_metrics",
    "fct_run_evaluation",
    "fct_metric_history",
    "rpt_model_leaderboard",
]
FULL_LINEAGE = "#!/overview?g_v=1"  # the overview page with the whole lineage graph open
CY = "[...document.querySelectorAll('*')].map((e) => e._cyreg && e._cyreg.cy).find(Boolean)"
# How many pixels of the graph's canvases cytoscape has painted (0 before the first draw).
PAINTED = f"""(() => {{
    const cy = {CY};
    if (!cy || cy.nodes().length === 0) return 0;
    let painted = 0;
    for (const canvas of cy.container().querySelectorAll('canvas')) {{
        if (!canvas.width || !canvas.height) continue;
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
    }}
    return painted;
}})()"""
GRAPH = f"""(() => {{
    const cy = {CY};
    const box = cy.container().getBoundingClientRect();
    const shown = (n) => {{
        const b = n.renderedBoundingBox();
        return n.visible() && b.x1 >= 0 && b.y1 >= 0 && b.x2 <= box.width && b.y2 <= box.height;
    }};
    return {{
        nodes: cy.nodes().map((n) => n.id()),
        shown: cy.nodes().filter(shown).map((n) => n.id()),
        edges: cy.edges().map((e) => [e.source().id(), e.target().id()]),
        width: box.width,
        height: box.height,
    }};
}})()"""


def dbt_invoke(args: list[str], warehouse: wh.Warehouse) -> None:
    from dbt.cli.main import dbtRunner

    with pytest.MonkeyPatch.context() as env:
        for key, value in {**warehouse.env(), "DO_NOT_TRACK": "1"}.items():
            env.setenv(key, value)
        outcome = dbtRunner().invoke([*args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)])
    assert outcome.success, f"dbt {' '.join(args)} failed: {outcome.exception}"


@pytest.fixture(scope="module")
def docs(built: wh.Warehouse, tmp_path_factory) -> Path:
    """The target directory of `dbt docs generate --static` over the built database."""
    target = tmp_path_factory.mktemp("docs_target")
    dbt_invoke(
        ["docs", "generate", "--static", "--quiet", "--target-path", str(target), "--log-path", str(target / "logs")],
        built,
    )
    return target


@pytest.fixture(scope="module")
def manifest(docs: Path) -> dict:
    return json.loads((docs / "manifest.json").read_text())


def project_nodes(manifest: dict) -> dict[str, dict]:
    """The project's models, seeds, sources and exposures by unique id: what the lineage graph draws."""
    project = manifest["metadata"]["project_name"]
    nodes = {**manifest["nodes"], **manifest["sources"], **manifest["exposures"]}
    return {
        uid: node
        for uid, node in nodes.items()
        if node["package_name"] == project and node["resource_type"] in ("model", "seed", "source", "exposure")
    }


def marts(manifest: dict) -> dict[str, dict]:
    return {
        uid: n
        for uid, n in project_nodes(manifest).items()
        if n["resource_type"] == "model" and n["path"].startswith("marts/")
    }


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_the_static_page_is_one_file_with_the_project_in_it(docs: Path, manifest: dict):
    page = (docs / "static_index.html").read_text()
    assert '<script src="' not in page, "static_index.html should need no other file"
    assert {f"model.ml_eval.{name}" for name in MARTS} <= set(marts(manifest))
    for uid in marts(manifest):
        assert uid in page, f"{uid} is not embedded in static_index.html"


def test_the_lineage_graph_draws_the_project(docs: Path, manifest: dict):
    with browser.open_page(width=1600, height=1000, scale=2) as page:
        page.goto(docs / f"static_index.html{FULL_LINEAGE}")
        page.wait_for(PAINTED, timeout=60)
        assert "Lineage Graph" in page.evaluate("document.body.innerText")
        graph = page.evaluate(GRAPH)
        page.screenshot(SCREENSHOT)

    expected = project_nodes(manifest)
    missing = sorted(set(expected) - set(graph["nodes"]))
    assert not missing, f"not in the lineage graph: {missing}"
    off_screen = sorted(set(marts(manifest)) - set(graph["shown"]))
    assert not off_screen, f"marts drawn outside the {graph['width']}x{graph['height']} graph: {off_screen}"
    edges = {tuple(edge) for edge in graph["edges"]}
    for uid, mart in marts(manifest).items():
        for parent in mart["depends_on"]["nodes"]:
            assert (parent, uid) in edges, f"no edge {parent} -> {uid} in the lineage graph"
    assert png_size(SCREENSHOT) == (3200, 2000)


def test_dump_dom_sees_the_rendered_graph(docs: Path):
    dom = browser.dump_dom(docs / f"static_index.html{FULL_LINEAGE}", budget_ms=15000)
    assert "Lineage Graph" in dom and "<canvas" in dom
    assert "rpt_model_leaderboard" in dom


def test_screenshot_of_a_page(tmp_path: Path):
    png = browser.screenshot("data:text/html,<h1>ml-eval</h1>", tmp_path / "page.png", 400, 300, budget_ms=500)
    assert png_size(png) == (400, 300)


def test_the_built_database_has_no_undocumented_column(docs: Path, manifest: dict):
    """The rules again, now with the catalog: columns the relations have but YAML does not declare."""
    catalog = json.loads((docs / "catalog.json").read_text())
    violations = rules.check(manifest, catalog)
    assert not violations, "\n".join(violations)
