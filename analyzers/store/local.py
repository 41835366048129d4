"""The embedded default: the logger's daily files are the indices, scanned in place with DuckDB.

A window reads only the files of the days it touches (plus later days for feedback, which may
arrive days after its prediction), keeps each line whose ``@timestamp`` falls inside, counts a
prediction id once, joins the latest feedback label, and spreads ``ml.features``/``ml.groups``
into one column each.  Parsed files and windows are cached until a file changes, so the many
aggregates of one job cost one scan.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from analyzers.findings import Finding
from analyzers.store.base import Query, ScanReport, SkippedLine, Store
from analyzers.store.duck import DuckAggregates, quote
from analyzers.store.logfiles import LogFile, discover, load_file, sql_string
from analyzers.store.sqlite_state import SqliteState
from analyzers.timeutil import Window
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX

_MAX_WINDOWS = 6
_SETTLED_SECONDS = 600  # a file untouched this long is no longer being written: its parse is kept
_EMPTY_EVENTS = """CREATE TABLE IF NOT EXISTS _pw_no_events (file VARCHAR, line_no BIGINT, ts TIMESTAMPTZ,
    dataset VARCHAR, outcome VARCHAR, pid VARCHAR, model VARCHAR, version VARCHAR, entity VARCHAR,
    prediction VARCHAR, score DOUBLE, label VARCHAR, latency DOUBLE, rate DOUBLE,
    error_type VARCHAR, error_message VARCHAR)"""


def default_state_dir(log_dir: str | os.PathLike[str]) -> Path:
    """``.predwatch/`` beside the log directory, as DESIGN.md sets it."""
    return Path(log_dir).resolve().parent / ".predwatch"


class LocalStore(DuckAggregates, Store):
    """Reads ``<log_dir>/<service>/predictions-YYYY-MM-DD.ndjson``; keeps results under ``state_dir``."""

    def __init__(self, log_dir: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir(log_dir)
        self._state = SqliteState(self.state_dir)
        self._files: dict[str, tuple[tuple[str, int, int], str, str]] = {}
        self._windows: OrderedDict[tuple[Any, ...], str] = OrderedDict()
        self._names = itertools.count()
        self._report = ScanReport()
        self._skipped: dict[str, list[SkippedLine]] = {}
        with self._lock:
            self._con.execute(_EMPTY_EVENTS)

    # ---- scanning -------------------------------------------------------------------------
    def _file_table(self, log_file: LogFile) -> str:
        signature = log_file.signature()
        cached = self._files.get(signature[0])
        if cached and cached[0] == signature:
            return cached[1]
        if cached:
            self._con.execute(f"DROP {cached[2]} IF EXISTS {cached[1]}")
        table = f"_pw_file_{next(self._names)}"
        parquet = self._parsed_cache(log_file, signature)
        if parquet.exists():
            self._con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sql_string(str(parquet))})")
            self._files[signature[0]] = (signature, table, "VIEW")
            self._skipped[signature[0]] = []
            return table
        skipped = load_file(self._con, log_file, table)
        if not skipped and time.time() - signature[2] / 1e9 > _SETTLED_SECONDS:
            self._keep_parsed(table, parquet)
        self._files[signature[0]] = (signature, table, "TABLE")
        self._skipped[signature[0]] = skipped
        self._quarantine(log_file, skipped)
        return table

    def _parsed_cache(self, log_file: LogFile, signature: tuple[str, int, int]) -> Path:
        """Where the parsed form of one version (size, mtime) of a log file is kept as Parquet."""
        name = f"{log_file.path.parent.name}__{log_file.path.name}__{signature[1]}_{signature[2]}.parquet"
        return self.state_dir / "parsed" / name

    def _keep_parsed(self, table: str, target: Path) -> None:
        """Write a settled file's parsed events as Parquet, so the next scans skip the JSON parsing.

        Older versions of the same file are removed; a failure here only costs speed, never data.
        """
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            prefix = target.name.rsplit("__", 1)[0] + "__"
            for old in target.parent.glob(prefix + "*.parquet"):
                old.unlink(missing_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            self._con.execute(f"COPY {table} TO {sql_string(str(partial))} (FORMAT parquet)")
            partial.replace(target)
        except (OSError, duckdb.Error):
            return

    def _quarantine(self, log_file: LogFile, skipped: list[SkippedLine]) -> None:
        """Keep a report of a file's bad lines under the state dir (rewritten on every scan)."""
        folder = self.state_dir / "quarantine"
        name = f"{log_file.path.parent.name}__{log_file.path.name}.json"
        target = folder / name
        if not skipped:
            target.unlink(missing_ok=True)
            return
        folder.mkdir(parents=True, exist_ok=True)
        body = [{"file": s.source, "line": s.line, "reason": s.reason} for s in skipped]
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
        tmp.replace(target)

    def _table(self, query: Query) -> str:
        with self._lock:
            return self._window_table(query.model, query.window)

    def _window_table(self, model: str, window: Window) -> str:
        files = discover(self.log_dir)
        days = {d.date() for d in window.days()}
        first_day = min(days)
        prediction_files = [f for f in files if f.day in days]
        feedback_files = [f for f in files if f.day >= first_day]
        key = (model, window, tuple(f.signature() for f in feedback_files))
        if key in self._windows:
            self._windows.move_to_end(key)
            return self._windows[key]
        tables = {f.path: self._file_table(f) for f in feedback_files}
        self._report = ScanReport(skipped=[s for f in feedback_files for s in self._skipped.get(str(f.path), [])])
        pred_union = " UNION ALL BY NAME ".join(f"SELECT * FROM {tables[f.path]}" for f in prediction_files) or (
            "SELECT * FROM _pw_no_events"
        )
        fb_union = " UNION ALL BY NAME ".join(f"SELECT * FROM {tables[f.path]}" for f in feedback_files) or (
            "SELECT * FROM _pw_no_events"
        )
        table = f"_pw_window_{next(self._names)}"
        spread = sorted(
            {
                name
                for source in (*(tables[f.path] for f in prediction_files), "_pw_no_events")
                for (name, *_rest) in self._con.execute(f"DESCRIBE {source}").fetchall()
                if name.startswith((FEATURE_PREFIX, GROUP_PREFIX))
            }
        )
        extra = "".join(f", {quote(c)}" for c in spread)
        self._con.execute(
            f"""CREATE TABLE {table} AS
            WITH pred_all AS (SELECT * FROM ({pred_union}) WHERE dataset = 'ml.prediction' AND model = ?
                              AND ts >= ? AND ts < ?),
            pred AS (SELECT * FROM pred_all
                     QUALIFY row_number() OVER (PARTITION BY pid ORDER BY ts, file, line_no) = 1),
            fb AS (SELECT pid, label AS fb_label FROM ({fb_union})
                   WHERE dataset = 'ml.feedback' AND (model = ? OR model IS NULL) AND label IS NOT NULL
                   QUALIFY row_number() OVER (PARTITION BY pid ORDER BY ts DESC, file DESC, line_no DESC) = 1)
            SELECT pid AS prediction_id, ts AS "timestamp", version AS model_version, entity AS entity_id,
                   outcome, error_type, error_message, score, latency AS latency_ms, rate AS sample_rate,
                   1.0 / rate AS _w, CAST(prediction AS VARCHAR) AS prediction,
                   CAST(fb_label AS VARCHAR) AS label{extra}
            FROM pred LEFT JOIN fb USING (pid)""",
            [model, window.start, window.end, model],
        )
        total = self._con.execute(
            f"SELECT count(*) FROM ({pred_union}) WHERE dataset = 'ml.prediction' AND model = ? AND ts >= ? AND ts < ?",
            [model, window.start, window.end],
        ).fetchone()[0]
        distinct = self._con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        self._report.duplicates = int(total - distinct)
        self._windows[key] = table
        while len(self._windows) > _MAX_WINDOWS:
            _, old = self._windows.popitem(last=False)
            self._con.execute(f"DROP TABLE IF EXISTS {old}")
        return table

    def scan_report(self) -> ScanReport:
        return self._report

    # ---- results and alert state ------------------------------------------------------------
    def write_findings(self, findings: Sequence[Finding]) -> None:
        self._state.write_findings(findings)

    def read_findings(
        self, model: str | None = None, job: str | None = None, since: Any = None, until: Any = None
    ) -> list[Finding]:
        return self._state.read_findings(model, job, since, until)

    def get_state(self, key: str) -> tuple[dict[str, Any], Any] | None:
        return self._state.get_state(key)

    def put_state(self, key: str, doc: dict[str, Any], version: Any = None) -> Any:
        return self._state.put_state(key, doc, version)

    def delete_state(self, key: str, version: Any = None) -> None:
        self._state.delete_state(key, version)

    def list_state(self, prefix: str = "") -> dict[str, tuple[dict[str, Any], Any]]:
        return self._state.list_state(prefix)

    def close(self) -> None:
        self._state.close()
        super().close()
