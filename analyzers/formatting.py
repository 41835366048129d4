"""Numbers as people read them at a glance, in the terminal, in alerts and in the HTML report."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any


def format_number(value: Any, digits: int = 3) -> str:
    """``—`` when missing, ``yes``/``no`` for flags, whole numbers with separators, else ``digits`` significant."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if (value.is_integer() or abs(value) >= 1000) and abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def format_percent(value: Any) -> str:
    """A share as a percentage with one decimal (``—`` when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.1%}"


def format_span(delta: timedelta) -> str:
    """A duration for people, to its two largest units: ``3d 4h``, ``1h 5m``, ``45m``, ``30s``."""
    seconds = round(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2]) or "0s"
