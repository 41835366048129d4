"""The self-contained HTML report of one model as of one time: verdicts, drift, fairness, performance, ops, trends."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from analyzers.config.models import Config
from analyzers.report.data import DEFAULT_SPAN, ReportData, gather
from analyzers.report.html import render
from analyzers.report.naming import report_file_name
from analyzers.report.output import is_directory, report_paths, write_atomically
from analyzers.store.base import Store

__all__ = ["DEFAULT_SPAN", "ReportData", "gather", "render", "report_file_name", "report_paths", "write_report"]


def write_report(
    store: Store,
    model: str,
    out: str | os.PathLike[str],
    *,
    config: Config | None = None,
    at: datetime | None = None,
    window: timedelta | None = None,
    span: timedelta = DEFAULT_SPAN,
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report of ``model`` as of ``at`` to ``out`` (a file, or a directory for ``<model>.html``).

    Each job is shown over its configured window ending at ``at`` (``window`` overrides them all), read
    from the stored findings when one covers exactly that window and computed otherwise; the trends
    reach ``span`` back.  ``base`` is where relative reference files are found.  Nothing is written
    unless the whole page was built.
    """
    path = Path(out) / report_file_name(model) if is_directory(out) else Path(out)
    data = gather(
        store, model, config=config, at=at, window=window, span=span, base=Path(base) if base is not None else None
    )
    write_atomically(path, render(data))
    return path
