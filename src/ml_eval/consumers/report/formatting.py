"""How values are written on the page: shown (rounded, UTC) and in data attributes (exact).

Everything returned as `Markup` is escaped here, once; everything else is plain text that the
page's autoescaping template or `Markup.format` escapes where it is placed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from markupsafe import Markup

from ml_eval.consumers.report.data import Named


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
    return str(value)


def data_attrs(**values: object) -> Markup:
    """` data-run-uuid="..." ...` from keyword arguments (underscores become dashes), escaped."""
    return Markup("").join(
        Markup(' data-{}="{}"').format(key.replace("_", "-"), exact(value)) for key, value in values.items()
    )


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


def run_label(row: Named) -> str:
    """The run's MLflow name, else the start of its run_uuid."""
    return row.run_name or row.run_uuid[:8]
