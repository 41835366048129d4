"""Numbers as people read them at a glance, in the terminal, in alerts and in the HTML report."""

from __future__ import annotations

import math
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
