"""The logger's daily files on disk: which exist, which days they hold, and their lines parsed.

Files are ``<dir>/<service>/predictions-YYYY-MM-DD.ndjson``, also rotated (``.ndjson.1``) or
gzip-compressed (``.ndjson.gz``).  Each file is read once per change (path, size, mtime) into a
DuckDB table of events; lines that are not usable are skipped and reported with file and line.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from analyzers.store.base import SkippedLine
from logshipper import schema

FILE_PATTERN = re.compile(
    re.escape(schema.LOG_FILE_PREFIX) + r"(\d{4}-\d{2}-\d{2})" + re.escape(schema.LOG_FILE_SUFFIX) + r"(\.\d+)?(\.gz)?$"
)

# JSON paths extracted from each line in one pass, in this order.
_PATHS = {
    "ts": '$."@timestamp"',
    "dataset": "$.event.dataset",
    "outcome": "$.event.outcome",
    "pid": "$.ml.prediction_id",
    "model": "$.ml.model.name",
    "version": "$.ml.model.version",
    "entity": "$.ml.entity_id",
    "prediction": "$.ml.prediction.label",
    "score": "$.ml.prediction.score",
    "label": "$.ml.label",
    "latency": "$.ml.latency_ms",
    "rate": "$.ml.sample_rate",
    "features": "$.ml.features",
    "groups": "$.ml.groups",
    "error_type": "$.error.type",
    "error_message": "$.error.message",
}
_TS = "ts"


@dataclass(frozen=True)
class LogFile:
    """One daily log file and the UTC day it holds."""

    path: Path
    day: date

    def signature(self) -> tuple[str, int, int]:
        stat = self.path.stat()
        return (str(self.path), stat.st_size, stat.st_mtime_ns)


def discover(log_dir: Path) -> list[LogFile]:
    """Every daily log file under ``log_dir`` (one folder per service, or the files directly)."""
    found = []
    if not log_dir.is_dir():
        return found
    for path in sorted([*log_dir.glob("*/predictions-*"), *log_dir.glob("predictions-*")]):
        match = FILE_PATTERN.search(path.name)
        if match and path.is_file():
            found.append(LogFile(path, datetime.strptime(match.group(1), "%Y-%m-%d").date()))
    return found


def _raw_lines_sql(path: Path) -> str:
    literal = str(path).replace("'", "''")
    return (
        f"SELECT row_number() OVER () AS line_no, line FROM read_csv('{literal}', columns={{'line': 'VARCHAR'}},"
        " delim='\\x01', quote='', escape='', header=false, auto_detect=false, max_line_size=268435456,"
        " compression='auto')"
    )


def _raw_lines_python(path: Path) -> pd.DataFrame:
    """Slow path for files DuckDB's reader refuses (invalid UTF-8): every line, undecodable bytes replaced."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        lines = [raw.rstrip(b"\n").decode("utf-8", errors="replace") for raw in handle]
    return pd.DataFrame({"line_no": range(1, len(lines) + 1), "line": lines})


def load_file(con: duckdb.DuckDBPyConnection, log_file: LogFile, table: str) -> list[SkippedLine]:
    """Parse one file into ``table`` (one row per usable event); return the lines skipped and why."""
    try:
        con.execute(f"CREATE OR REPLACE TABLE _pw_raw AS {_raw_lines_sql(log_file.path)}")
    except duckdb.Error:
        con.register("_pw_raw_df", _raw_lines_python(log_file.path))
        con.execute("CREATE OR REPLACE TABLE _pw_raw AS SELECT * FROM _pw_raw_df")
        con.unregister("_pw_raw_df")
    paths = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in _PATHS.values()) + "]"
    names = list(_PATHS)
    idx = {name: i + 1 for i, name in enumerate(names)}

    def text(name: str) -> str:
        return f"json_extract_string(CAST(v[{idx[name]}] AS VARCHAR), '$')"

    def jtype(name: str) -> str:
        return f"json_type(v[{idx[name]}])"

    def json_text(name: str) -> str:
        kind = jtype(name)
        return f"CASE WHEN {kind} IS NULL OR {kind} = 'NULL' THEN NULL ELSE CAST(v[{idx[name]}] AS VARCHAR) END"

    numeric_types = "('BIGINT', 'UBIGINT', 'DOUBLE')"
    reason = f"""CASE
        WHEN line IS NULL OR trim(line) = '' THEN NULL
        WHEN NOT json_valid(line) THEN 'not valid JSON (cut short or corrupted)'
        WHEN left(ltrim(line), 1) <> '{{' THEN 'not a JSON object'
        WHEN {jtype("ts")} IS DISTINCT FROM 'VARCHAR' OR TRY_CAST({text("ts")} AS TIMESTAMPTZ) IS NULL
            THEN 'missing or invalid @timestamp'
        WHEN {jtype("dataset")} IS DISTINCT FROM 'VARCHAR' OR {text("dataset")} NOT IN ('ml.prediction', 'ml.feedback')
            THEN 'missing or unknown event.dataset'
        WHEN {jtype("pid")} IS DISTINCT FROM 'VARCHAR' OR {text("pid")} = '' THEN 'missing or invalid ml.prediction_id'
        WHEN {text("dataset")} = 'ml.prediction' AND ({jtype("model")} IS DISTINCT FROM 'VARCHAR')
            THEN 'missing or invalid ml.model.name'
        WHEN {jtype("score")} IS NOT NULL AND {jtype("score")} NOT IN {numeric_types} AND {jtype("score")} <> 'NULL'
            THEN 'ml.prediction.score is not a number'
        WHEN {jtype("latency")} IS NOT NULL AND {jtype("latency")} NOT IN {numeric_types}
            AND {jtype("latency")} <> 'NULL' THEN 'ml.latency_ms is not a number'
        WHEN {jtype("rate")} IS NOT NULL AND {jtype("rate")} <> 'NULL' AND ({jtype("rate")} NOT IN {numeric_types}
            OR TRY_CAST({text("rate")} AS DOUBLE) <= 0 OR TRY_CAST({text("rate")} AS DOUBLE) > 1)
            THEN 'ml.sample_rate is not a number in (0, 1]'
        WHEN {jtype("features")} IS NOT NULL AND {jtype("features")} NOT IN ('OBJECT', 'NULL')
            THEN 'ml.features is not an object'
        WHEN {jtype("groups")} IS NOT NULL AND {jtype("groups")} NOT IN ('OBJECT', 'NULL')
            THEN 'ml.groups is not an object'
        ELSE '' END"""
    con.execute(
        "CREATE OR REPLACE TABLE _pw_checked AS SELECT line_no,"
        f" v, {reason} AS reason FROM (SELECT line_no, line,"
        f" CASE WHEN json_valid(line) THEN json_extract(line, {paths}) END AS v FROM _pw_raw)"
    )
    skipped = [
        SkippedLine(str(log_file.path), int(line_no), reason)
        for line_no, reason in con.execute(
            "SELECT line_no, reason FROM _pw_checked WHERE reason <> '' ORDER BY line_no"
        ).fetchall()
    ]
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS SELECT
            CAST(? AS VARCHAR) AS file, line_no,
            CAST({text("ts")} AS TIMESTAMPTZ) AS ts,
            {text("dataset")} AS dataset, coalesce({text("outcome")}, 'success') AS outcome,
            {text("pid")} AS pid, {text("model")} AS model, {text("version")} AS version,
            {text("entity")} AS entity, {json_text("prediction")} AS prediction,
            TRY_CAST({text("score")} AS DOUBLE) AS score, {json_text("label")} AS label,
            TRY_CAST({text("latency")} AS DOUBLE) AS latency,
            coalesce(TRY_CAST({text("rate")} AS DOUBLE), 1.0) AS rate,
            {json_text("features")} AS features, {json_text("groups")} AS groups,
            {text("error_type")} AS error_type, {text("error_message")} AS error_message
        FROM _pw_checked WHERE reason = ''""",
        [str(log_file.path)],
    )
    con.execute("DROP TABLE IF EXISTS _pw_checked")
    con.execute("DROP TABLE IF EXISTS _pw_raw")
    return skipped
