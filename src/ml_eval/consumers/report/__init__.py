"""The evaluation report: one static, self-contained HTML page of the published marts.

Fetch, assemble, render: `data` reads the marts into typed rows and holds the selection rules
(which runs are featured, who is the runner-up); `charts` draws them as inline SVG; `page`
fills the Jinja template in `templates/` (stylesheet and check script inlined). Every number
on the page is read from the marts, nothing computed again; each mark of a chart carries its
exact value in `data-*` attributes (and a `<title>` tooltip) so a test can compare the page
with the marts. The page needs no network, script, font or stylesheet from outside; its inline
script only records, once loaded, that every chart drew its marks (`data-rendered`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ml_eval import warehouse as wh
from ml_eval.consumers.report.data import load
from ml_eval.consumers.report.page import render

__all__ = ["build_report"]

log = logging.getLogger(__name__)


def build_report(warehouse: wh.Warehouse, *, schema: str, out_path: Path) -> Path:
    """Read the marts in `schema` of `warehouse`, write the page to `out_path`, return its path."""
    page = render(load(warehouse, schema))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d bytes)", out, len(page))
    return out
