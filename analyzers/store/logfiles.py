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
from typing import TYPE_CHECKING, cast

import duckdb
import pandas as pd

from analyzers.store.base import SkippedLine
from logshipper import schema

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType  # duckdb.typing before DuckDB 2

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
# The typed reader's buffers grow with its largest line: a longer line sends the file to the exact path,
# which takes lines up to 256 MiB, so that a small memory budget still parses clean files the fast way.
_TYPED_MAX_LINE = 16 * 2**20


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
    found: list[LogFile] = []
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


def load_file(
    con: duckdb.DuckDBPyConnection, log_file: LogFile, table: str, parquet: Path | None = None
) -> tuple[bool, list[SkippedLine]]:
    """Parse one file (one row per usable event); return whether it went to ``parquet`` and the lines skipped.

    Clean files take DuckDB's typed JSON reader; a file it refuses (a bad line, a type conflict) is
    read line by line so that every bad line is named and every good one kept.  With ``parquet``, a
    file whose every line is usable is written there, streamed from the reader without being held in
    memory; otherwise (bad lines, or the write failed) its events land in the table ``table``.
    """
    if _load_typed(con, log_file, table, parquet):
        return parquet is not None, []
    skipped = _load_exact(con, log_file, table)
    if parquet is not None and not skipped:
        try:
            con.execute(f"COPY {table} TO {sql_string(str(parquet))} (FORMAT parquet)")
        except duckdb.Error:
            return False, skipped
        con.execute(f"DROP TABLE {table}")
        return True, skipped
    return False, skipped


def _load_exact(con: duckdb.DuckDBPyConnection, log_file: LogFile, table: str) -> list[SkippedLine]:
    skipped = _load_checked(con, log_file, f"{table}_objects")
    _spread(con, f"{table}_objects", table)
    con.execute(f"DROP TABLE {table}_objects")
    return skipped


def _load_checked(con: duckdb.DuckDBPyConnection, log_file: LogFile, table: str) -> list[SkippedLine]:
    """The exact path: every line validated on its own, bad ones reported with their line number."""
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
            {text("pid")} AS pid, hash({text("pid")}) AS pid_hash,
            {text("model")} AS model, {text("version")} AS version,
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


def _spread(con: duckdb.DuckDBPyConnection, source: str, table: str) -> None:
    """Turn the JSON-text ``features``/``groups`` objects of ``source`` into one column per key."""
    select = ""
    for column, prefix in (("features", schema.FEATURE_PREFIX), ("groups", schema.GROUP_PREFIX)):
        keys = sorted(
            k for (k,) in con.execute(f"SELECT DISTINCT unnest(json_keys({column})) FROM {source}").fetchall()
        )
        if not keys:
            continue
        paths = "[" + ", ".join(sql_string('$."' + k.replace('"', '\\"') + '"') for k in keys) + "]"
        for i, k in enumerate(keys, start=1):
            cell = f"json_extract({column}, {paths})[{i}]"
            select += (
                f", CASE WHEN json_type({cell}) IS NULL OR json_type({cell}) = 'NULL' THEN NULL"
                f" ELSE CAST({cell} AS VARCHAR) END AS {_ident(prefix + k)}"
            )
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * EXCLUDE (features, groups){select} FROM {source}")


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_NUMBER = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
}


def _type_name(dtype: DuckDBPyType) -> str:
    return str(dtype.id).upper()


def _children(dtype: DuckDBPyType) -> dict[str, DuckDBPyType]:
    return cast("dict[str, DuckDBPyType]", dict(dtype.children)) if _type_name(dtype) == "STRUCT" else {}


def _load_typed(con: duckdb.DuckDBPyConnection, log_file: LogFile, table: str, parquet: Path | None) -> bool:
    """The fast path: DuckDB's typed newline-delimited JSON reader into ``parquet`` when given, else into
    the table ``table``.  False when the file needs the exact path.

    The reader infers types from every line (a sample would silently drop a feature first seen past
    it); a line whose type conflicts, or a malformed line, makes it raise, and then the exact path
    takes the file.
    """
    source = (
        f"read_json({sql_string(str(log_file.path))}, format='newline_delimited', compression='auto',"
        f" maximum_object_size={_TYPED_MAX_LINE}, sample_size=-1)"
    )
    try:
        relation = con.sql(f"SELECT * FROM {source}")
        top = dict(zip(relation.columns, relation.types, strict=True))
    except duckdb.Error:
        return False

    def field(*path: str) -> tuple[str, DuckDBPyType] | None:
        if path[0] not in top:
            return None
        expr, dtype = _ident(path[0]), top[path[0]]
        for name in path[1:]:
            children = _children(dtype)
            if name not in children:
                return None
            expr, dtype = f"struct_extract({expr}, {sql_string(name)})", children[name]
        return expr, dtype

    def text(*path: str) -> str:
        found = field(*path)
        return "CAST(NULL AS VARCHAR)" if found is None else f"CAST({found[0]} AS VARCHAR)"

    def number(*path: str) -> str | None:
        found = field(*path)
        if found is None or _type_name(found[1]) == "NULL":
            return "CAST(NULL AS DOUBLE)"
        return f"CAST({found[0]} AS DOUBLE)" if _type_name(found[1]) in _NUMBER else None

    def value(expr: str, dtype: DuckDBPyType) -> str:
        name = _type_name(dtype)
        if name in _NUMBER:
            return f"CAST({expr} AS DOUBLE)"
        if name == "NULL":
            return "CAST(NULL AS VARCHAR)"
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE CAST(to_json({expr}) AS VARCHAR) END"

    def json_value(*path: str) -> str:
        found = field(*path)
        return "CAST(NULL AS VARCHAR)" if found is None else value(*found)

    numbers = {
        name: number(*path)
        for name, path in (
            ("score", ("ml", "prediction", "score")),
            ("latency", ("ml", "latency_ms")),
            ("rate", ("ml", "sample_rate")),
        )
    }
    if any(expr is None for expr in numbers.values()):
        return False
    spread = []
    for column, prefix in (("features", schema.FEATURE_PREFIX), ("groups", schema.GROUP_PREFIX)):
        found = field("ml", column)
        if found is None or _type_name(found[1]) == "NULL":
            continue
        if _type_name(found[1]) != "STRUCT":
            return False
        for key, dtype in _children(found[1]).items():
            cell = f"struct_extract({found[0]}, {sql_string(key)})"
            spread.append(f"{value(cell, dtype)} AS {_ident(prefix + key)}")
    timestamp = field("@timestamp")
    if timestamp is None:
        return False
    select = [
        f"CAST({sql_string(str(log_file.path))} AS VARCHAR) AS file",
        "row_number() OVER () AS line_no",
        f"TRY_CAST({timestamp[0]} AS TIMESTAMPTZ) AS ts",
        f"{text('event', 'dataset')} AS dataset",
        f"coalesce({text('event', 'outcome')}, 'success') AS outcome",
        f"{text('ml', 'prediction_id')} AS pid",
        f"hash({text('ml', 'prediction_id')}) AS pid_hash",
        f"{text('ml', 'model', 'name')} AS model",
        f"{text('ml', 'model', 'version')} AS version",
        f"{text('ml', 'entity_id')} AS entity",
        f"{json_value('ml', 'prediction', 'label')} AS prediction",
        f"{numbers['score']} AS score",
        f"{json_value('ml', 'label')} AS label",
        f"{numbers['latency']} AS latency",
        f"coalesce({numbers['rate']}, 1.0) AS rate",
        f"{text('error', 'type')} AS error_type",
        f"{text('error', 'message')} AS error_message",
        *spread,
    ]
    # The reader already inferred every column's type; naming them spares a second inference pass.
    columns = ", ".join(f"{sql_string(name)}: {sql_string(str(dtype))}" for name, dtype in top.items())
    typed_source = source[:-1] + f", columns={{{columns}}})"
    written = table if parquet is None else f"read_parquet({sql_string(str(parquet))})"

    def write(from_source: str) -> None:
        body = f"SELECT {', '.join(select)} FROM {from_source}"
        if parquet is None:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS {body}")
        else:
            con.execute(f"COPY ({body}) TO {sql_string(str(parquet))} (FORMAT parquet)")

    try:
        try:
            write(typed_source)
        except duckdb.Error:
            write(source)
        (invalid,) = con.execute(
            f"""SELECT count(*) FROM {written} WHERE ts IS NULL OR pid IS NULL OR pid = ''
                OR dataset IS NULL OR dataset NOT IN ('ml.prediction', 'ml.feedback')
                OR (dataset = 'ml.prediction' AND model IS NULL) OR rate <= 0 OR rate > 1"""
        ).fetchone() or (1,)
    except duckdb.Error:
        invalid = 1
    if invalid:
        if parquet is None:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        else:
            parquet.unlink(missing_ok=True)
        return False
    return True
