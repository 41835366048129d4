"""The self-contained HTML report of one model over one window: verdicts, drift, fairness, performance, ops."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from analyzers.config.models import Config
from analyzers.report.data import ReportData, gather
from analyzers.report.html import render
from analyzers.report.naming import report_file_name
from analyzers.store.base import Store
from analyzers.timeutil import Window

__all__ = ["ReportData", "gather", "render", "report_file_name", "write_report"]


def write_report(
    store: Store,
    model: str,
    window: Window,
    out: str | os.PathLike[str],
    *,
    config: Config | None = None,
    history: timedelta = timedelta(days=30),
    base: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report of ``model`` over ``window`` to the file ``out`` and return its path.

    Findings stored for exactly this window are used, the others computed now; ``history`` is how far
    back stored findings are drawn over time; ``base`` is where relative reference files are found.
    """
    data = gather(store, model, window, config=config, history=history, base=Path(base) if base is not None else None)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
