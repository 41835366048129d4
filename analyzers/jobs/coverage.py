"""How much of a window (or reference) holds data, so that no verdict rests on a span mostly empty.

A span is cut into ``SLOTS`` equal slots (an hour each for a day, seven hours for a week) and its
coverage is the share of slots holding at least one of the query's predictions, counted with one
``Store.volume`` aggregate.  Counting slots rather than the time from the first to the last
prediction also catches a hole in the middle (a reference whose service was down for five of its
seven days), and the fixed number of slots makes coverage mean the same for an hour and for a week:
the ``min_rows`` predictions a job needs anyway fill 98% of 24 slots when spread evenly, so
coverage stays near 1 for quiet services and drops only where the span really has no data.
"""

from __future__ import annotations

import math
from datetime import timedelta

from analyzers.findings.coverage import Coverage
from analyzers.store.base import PredictionReader, Query
from analyzers.timeutil import Window, format_time

SLOTS = 24


def _shortfall(covered: Coverage, what: str, min_coverage: float) -> str | None:
    """Why ``what`` (e.g. "the reference") is too empty for a verdict, or ``None`` when it is not."""
    if covered.share >= min_coverage:
        return None
    span = f"{format_time(covered.window.start)} to {format_time(covered.window.end)}"
    where = (
        f"data only from {format_time(covered.first)} to {format_time(covered.last)}"
        if covered.first is not None and covered.last is not None
        else "no predictions at all"
    )
    return (
        f"{what} {span} holds predictions in {covered.filled} of its {covered.slots} slots "
        f"({covered.share:.0%} < min_coverage {min_coverage:.0%}; {where})"
    )


def slot_length(length: timedelta, slots: int = SLOTS) -> timedelta:
    """The length of one slot: the span over ``slots``, rounded up to whole seconds."""
    return timedelta(seconds=max(1, math.ceil(length.total_seconds() / slots)))


def measure(store: PredictionReader, query: Query, *, slots: int = SLOTS) -> Coverage:
    """The coverage of the query's window by the query's predictions (one volume aggregate)."""
    slot = slot_length(query.window.length, slots)
    volume = store.volume(query, slot)
    counts = volume["count"].to_numpy(dtype=float)
    filled = [i for i, c in enumerate(counts) if c > 0]
    first = volume["start"].iloc[filled[0]].to_pydatetime() if filled else None
    last = min(volume["start"].iloc[filled[-1]].to_pydatetime() + slot, query.window.end) if filled else None
    return Coverage(
        window=query.window,
        slot=slot,
        slots=len(counts),
        filled=len(filled),
        count=float(counts.sum()),
        first=first,
        last=last,
    )


def measure_windows(store: PredictionReader, queries: list[Query], *, slots: int = SLOTS) -> list[Coverage]:
    """The coverage of each query's window, as :func:`measure` gives it; windows of one length on one grid of
    slots (back-to-back hours, days) share one volume aggregate over their span, others are measured apart."""
    if len(queries) < 2 or any(q.with_(window=queries[0].window) != queries[0] for q in queries):
        return [measure(store, q, slots=slots) for q in queries]
    length = queries[0].window.length
    slot = slot_length(length, slots)
    first = min(q.window.start for q in queries)
    aligned = all(q.window.length == length and (q.window.start - first) % slot == timedelta(0) for q in queries)
    if not aligned or length % slot != timedelta(0):
        return [measure(store, q, slots=slots) for q in queries]
    span = Window(first, max(q.window.end for q in queries))
    volume = store.volume(queries[0].with_(window=span), slot)
    counts = volume["count"].to_numpy(dtype=float)
    starts = volume["start"]
    per_window = length // slot
    out = []
    for q in queries:
        offset = (q.window.start - first) // slot
        part = counts[offset : offset + per_window]
        filled = [i for i, c in enumerate(part) if c > 0]
        out.append(
            Coverage(
                window=q.window,
                slot=slot,
                slots=len(part),
                filled=len(filled),
                count=float(part.sum()),
                first=starts.iloc[offset + filled[0]].to_pydatetime() if filled else None,
                last=min(starts.iloc[offset + filled[-1]].to_pydatetime() + slot, q.window.end) if filled else None,
            )
        )
    return out


def measure_spans(store: PredictionReader, query: Query, spans: dict[str, Window | None]) -> dict[str, Coverage]:
    """The coverage of each named span (``None`` spans, such as a reference file, are left out) by ``query``."""
    return {name: measure(store, query.with_(window=span)) for name, span in spans.items() if span is not None}


def shortfall(measured: dict[str, Coverage], min_coverage: float) -> str | None:
    """Why the spans are too empty for a verdict (each one short of ``min_coverage``), or ``None``."""
    reasons = [r for name, c in measured.items() if (r := _shortfall(c, f"the {name}", min_coverage)) is not None]
    return "; ".join(reasons) or None
