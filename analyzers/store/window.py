"""One window of one model as SQL over the parsed Parquet files: a view of its predictions, and its quality.

The predictions of a window are one ``read_parquet([...], union_by_name=true)`` scan, whatever the number
of days (files of different days may type a column differently: the union reads it as JSON text, which is
what each day holds for it, so values come out the same).  A prediction id seen twice counts once (the first
by time, file and line stays); the latest feedback label per prediction id is joined, from the window's
days and every later day.  Only the repeated copies and the labels (by id hash) are materialised, never the
window.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from analyzers.store.base import ReasonCount
from analyzers.store.jsonparse import quote, sql_string
from analyzers.timeutil import Window
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX

REPEATED = "repeated id"
_CHECK = "hash(pid || chr(31))"  # a second hash of the prediction id, to confirm a match of the first
_NAMES = itertools.count()
EMPTY_EVENTS = """CREATE TABLE IF NOT EXISTS _pw_no_events (file VARCHAR, day DATE, line_no BIGINT, ts TIMESTAMPTZ,
    dataset VARCHAR, outcome VARCHAR, pid VARCHAR, pid_hash UBIGINT, model VARCHAR, version VARCHAR, entity VARCHAR,
    prediction VARCHAR, score DOUBLE, label VARCHAR, latency DOUBLE, rate DOUBLE, error_type VARCHAR,
    error_message VARCHAR, nested VARCHAR, reason VARCHAR)"""


def parquet_source(paths: Sequence[Path]) -> str:
    """One relation over many parsed files, columns matched by name (a column a file lacks is null)."""
    if not paths:
        return "_pw_no_events"
    listing = "[" + ", ".join(sql_string(str(p)) for p in paths) + "]"
    return f"read_parquet({listing}, union_by_name=true)"


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMPTZ {sql_string(moment.astimezone(timezone.utc).isoformat())}"


def _date(day: date) -> str:
    return f"DATE {sql_string(day.isoformat())}"


@dataclass
class WindowTables:
    """What one window is made of in the connection: the view jobs read, and what it rests on."""

    view: str
    unlabelled: str  # the view without ``label``, spared the feedback join
    predictions: str  # SQL of every line of the window's days (events and set-aside lines)
    inside: str  # the time and day condition of the window
    model: str
    dups: str
    feedback: str
    repeated: int
    labelled: bool  # whether the view joins feedback labels

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(f"DROP VIEW IF EXISTS {self.view}")
        con.execute(f"DROP VIEW IF EXISTS {self.unlabelled}")
        for table in (self.dups, self.feedback):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def build(
    con: duckdb.DuckDBPyConnection, model: str, window: Window, predictions: Sequence[Path], feedback: Sequence[Path]
) -> WindowTables:
    """Create the window's view over the Parquet files of its days (``predictions``) and of every day from its
    first on (``feedback``)."""
    days = [d.date() for d in window.days()]
    n = next(_NAMES)
    view, unlabelled, dups, fb = f"_pw_window_{n}", f"_pw_plain_{n}", f"_pw_dups_{n}", f"_pw_fb_{n}"
    source = parquet_source(predictions)
    inside = (
        f"day BETWEEN {_date(days[0])} AND {_date(days[-1])}"
        f" AND ts >= {_timestamp(window.start)} AND ts < {_timestamp(window.end)}"
    )
    events = f"(SELECT * FROM {source} WHERE dataset = 'ml.prediction' AND model = {sql_string(model)} AND {inside})"
    # One hash aggregate over the window's predictions and its feedback together, by the 64-bit hash of the
    # prediction id stored at parse time: how often each id was predicted (a prediction id seen twice counts
    # once), and the latest label (by time, then line; no sort of the feedback).  A label is confirmed by a
    # second hash of the id, here, once: the window's labels are kept by hash (``fb``), so every read that needs
    # them joins on one integer.  Two ids sharing a hash are left unlabelled, never mislabelled.
    predicted = f"dataset = 'ml.prediction' AND model = {sql_string(model)} AND {inside}"
    latest = "epoch_us(ts)::HUGEINT * 4294967296 + line_no"
    # Feedback from days after the window (a window in the past) is mostly about other predictions: only the
    # window's ids are aggregated, which costs a pass over the window's ids and spares most of the aggregate.
    later = set(feedback) - set(predictions)
    ours = f" AND pid_hash IN (SELECT pid_hash FROM {events})" if later else ""
    answered = (
        f"dataset = 'ml.feedback' AND (model = {sql_string(model)} OR model IS NULL) AND label IS NOT NULL"
        f" AND day >= {_date(days[0])}{ours}"
    )
    confirmed = "fb_check = low AND low = high"
    con.execute(
        f"""CREATE TABLE {fb} AS SELECT pid_hash, n, CASE WHEN {confirmed} THEN fb_label END AS fb_label FROM (
            SELECT pid_hash, count(*) FILTER (WHERE asked) AS n, min(c) FILTER (WHERE asked) AS low,
                max(c) FILTER (WHERE asked) AS high, arg_max(c, k) FILTER (WHERE NOT asked) AS fb_check,
                arg_max(label, k) FILTER (WHERE NOT asked) AS fb_label
            FROM (SELECT pid_hash, dataset = 'ml.prediction' AS asked, {_CHECK} AS c, {latest} AS k, label
                FROM {parquet_source(feedback)} WHERE ({predicted}) OR ({answered}))
            GROUP BY pid_hash)
        WHERE n > 1 OR (n > 0 AND {confirmed})"""
    ).fetchall()
    counted = con.execute(f"SELECT count(*) FILTER (WHERE n > 1), count(fb_label) FROM {fb}").fetchall()
    candidates, labelled = counted[0]
    if candidates:
        con.execute(
            f"""CREATE TABLE {dups} AS SELECT file, day, line_no FROM (
                SELECT file, day, line_no, row_number() OVER (PARTITION BY pid ORDER BY ts, file, line_no) AS rn
                FROM {events} WHERE pid_hash IN (SELECT pid_hash FROM {fb} WHERE n > 1))
            WHERE rn > 1"""
        ).fetchall()
    else:
        con.execute(f"CREATE TABLE {dups} (file VARCHAR, day DATE, line_no BIGINT)").fetchall()
    (repeated,) = con.execute(f"SELECT count(*) FROM {dups}").fetchall()[0]
    unique = f" ANTI JOIN {dups} USING (file, line_no)" if repeated else ""
    joins, label = unique, "CAST(NULL AS VARCHAR)"
    if labelled:
        joins += f" LEFT JOIN (SELECT pid_hash, fb_label FROM {fb} WHERE fb_label IS NOT NULL) USING (pid_hash)"
        label = "fb_label"
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    spread = sorted(name for name, *_ in described if name.startswith((FEATURE_PREFIX, GROUP_PREFIX)))
    extra = "".join(f", {quote(c)}" for c in spread)
    columns = f"""pid AS prediction_id, ts AS "timestamp", version AS model_version, entity AS entity_id,
               outcome, error_type, error_message, score, latency AS latency_ms, rate AS sample_rate,
               1.0 / rate AS _w, prediction{extra}, file AS _file, line_no AS _line, nested AS _nested"""
    con.execute(f"CREATE VIEW {view} AS SELECT {columns}, {label} AS label FROM {events}{joins}")
    con.execute(f"CREATE VIEW {unlabelled} AS SELECT {columns} FROM {events}{unique}")
    return WindowTables(view, unlabelled, source, inside, model, dups, fb, int(repeated), bool(labelled))


def _place(file: str | None, line: int | None) -> str | None:
    return None if file is None else f"{file}:{line}"


def quality_counts(con: duckdb.DuckDBPyConnection, tables: WindowTables) -> tuple[int, dict[str, ReasonCount]]:
    """Lines considered for the window (its model's events, repeats included, and the set-aside lines that seem
    to be about it or about no model in particular) and, per reason, those set aside: quarantined lines,
    repeated ids and nested values."""
    model = sql_string(tables.model)
    (events,) = con.execute(
        f"""SELECT count(*) FROM {tables.predictions} WHERE dataset IS NOT NULL AND {tables.inside}
            AND (model = {model} OR (dataset = 'ml.feedback' AND model IS NULL))"""
    ).fetchall()[0]
    rows = con.execute(
        f"""SELECT reason, count(*), arg_min(file, (day, file, line_no)), arg_min(line_no, (day, file, line_no))
            FROM {tables.predictions}
            WHERE reason IS NOT NULL AND {tables.inside} AND (model = {model} OR model IS NULL)
            GROUP BY reason"""
    ).fetchall()
    reasons = {reason: ReasonCount(int(n), _place(file, line)) for reason, n, file, line in rows}
    lines = int(events) + sum(r.count for r in reasons.values())
    if tables.repeated:
        file, line = con.execute(
            f"SELECT file, line_no FROM {tables.dups} ORDER BY day, file, line_no LIMIT 1"
        ).fetchall()[0]
        reasons[REPEATED] = ReasonCount(tables.repeated, _place(file, line))
    nested = con.execute(
        f"""SELECT 'nested value in ' || field, count(*), arg_min(_file, (_file, _line)), arg_min(_line, (_file, _line))
            FROM (SELECT unnest(string_split(_nested, chr(31))) AS field, _file, _line FROM {tables.unlabelled}
                  WHERE _nested IS NOT NULL)
            GROUP BY field"""
    ).fetchall()
    for reason, n, file, line in nested:
        reasons[reason] = ReasonCount(int(n), _place(file, line))
    return lines, reasons
