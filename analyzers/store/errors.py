"""A DuckDB failure told in words: what the store was doing, what went wrong and what to do, never SQL."""

from __future__ import annotations

import re

import duckdb

_QUOTED_PATH = re.compile(r'"([^"]+)"')
_PARSED = re.compile(r"(?P<log>predictions-\d{4}-\d{2}-\d{2}\.ndjson(?:\.\d+)?(?:\.gz)?)\.")
_BIN = re.compile(r"^(?P<month>\d{4}-\d{2})\.\d+\.\d+\.parquet$")


def _which_file(message: str) -> str | None:
    """The log file (or compacted month) a parsed file named in DuckDB's message belongs to."""
    for path in _QUOTED_PATH.findall(message):
        name = path.rsplit("/", 1)[-1]
        service = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
        parsed = _PARSED.match(name)
        if parsed:
            return f"the parsed lines of {service}/{parsed.group('log')}"
        month = _BIN.match(name)
        if month:
            return f"the parsed lines of {service}'s days of {month.group('month')}"
        if path.endswith((".ndjson", ".gz")) or ".ndjson." in path:
            return path
    return None


def _first_line(message: str) -> str:
    """DuckDB's own sentence, without the query it quotes."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line.split(" LINE ")[0][:200]


def describe(action: str, exc: BaseException, memory_limit: str) -> str:
    """``<action> failed: <what went wrong>; <what to do>`` for a DuckDB error."""
    message = str(exc)
    place = _which_file(message)
    if isinstance(exc, duckdb.OutOfMemoryException):
        return (
            f"{action} failed: the local store ran out of its memory budget (store.local.memory_limit = "
            f"{memory_limit}); raise it, or shorten the job's window"
        )
    if isinstance(exc, duckdb.IOException) or "No files found" in message or "Cannot open file" in message:
        what = place or "a parsed copy of the logs"
        return (
            f"{action} failed: could not read {what} (another process replaced it, or the state directory is not "
            "readable); it is parsed again on the next run, so run again, and check state.path if it keeps failing"
        )
    kind = type(exc).__name__.replace("Exception", " error")
    where = f" in {place}" if place else ""
    return (
        f"{action} failed: DuckDB reported a {kind}{where} ({_first_line(message)}); run again, and report it if"
        " it keeps failing"
    )
