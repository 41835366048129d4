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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson

from analyzers.config.models import DEFAULT_MEMORY_LIMIT
from analyzers.findings import Finding
from analyzers.store.base import Query, ScanReport, SkippedLine, Store
from analyzers.store.duck import DuckAggregates, quote
from analyzers.store.logfiles import LogFile, discover, load_file, sql_string
from analyzers.store.sqlite_state import SqliteState
from analyzers.timeutil import Window
from logshipper.schema import FEATURE_PREFIX, GROUP_PREFIX

_MAX_WINDOWS = 6
_SETTLED_SECONDS = 600  # a file untouched this long is no longer being written: its parse is kept
# Parsed files are kept per DuckDB version: ``pid_hash`` holds DuckDB's hash of the prediction id.
_CACHE_FORMAT = "v2-duckdb" + duckdb.__version__.replace(".", "_")
_EMPTY_EVENTS = """CREATE TABLE IF NOT EXISTS _pw_no_events (file VARCHAR, line_no BIGINT, ts TIMESTAMPTZ,
    dataset VARCHAR, outcome VARCHAR, pid VARCHAR, pid_hash UBIGINT, model VARCHAR, version VARCHAR, entity VARCHAR,
    prediction VARCHAR, score DOUBLE, label VARCHAR, latency DOUBLE, rate DOUBLE,
    error_type VARCHAR, error_message VARCHAR)"""


def _union(sources: list[str]) -> str:
    """One relation of many files' events, columns matched by name (a feature absent from a file is null)."""
    return " UNION ALL BY NAME ".join(f"SELECT * FROM {s}" for s in sources) or "SELECT * FROM _pw_no_events"


def _timestamp(moment: datetime) -> str:
    return f"TIMESTAMPTZ {sql_string(moment.astimezone(timezone.utc).isoformat())}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_state_dir(log_dir: str | os.PathLike[str]) -> Path:
    """``.predwatch/`` beside the log directory, as DESIGN.md sets it."""
    return Path(log_dir).resolve().parent / ".predwatch"


class LocalStore(DuckAggregates, Store):
    """Reads ``<log_dir>/<service>/predictions-YYYY-MM-DD.ndjson``; keeps results under ``state_dir``."""

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str] | None = None,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        state = Path(state_dir) if state_dir is not None else default_state_dir(log_dir)
        super().__init__(memory_limit, state / "spill")
        self.log_dir = Path(log_dir)
        self.state_dir = state
        self._state = SqliteState(self.state_dir)
        # Per log file: its signature, the relation of its parsed events, and what to release when it
        # changes (a table in memory, or this process's own Parquet file).
        self._files: dict[str, tuple[tuple[str, int, int], str, str | None, Path | None]] = {}
        self._windows: OrderedDict[tuple[Any, ...], tuple[str, str, str]] = OrderedDict()
        self._names = itertools.count()
        self._report = ScanReport()
        self._skipped: dict[str, list[SkippedLine]] = {}
        with self._lock:
            self._con.execute(_EMPTY_EVENTS)
        self._sweep_live()

    # ---- scanning -------------------------------------------------------------------------
    def _file_source(self, log_file: LogFile) -> str:
        """A relation (``read_parquet(...)``, or a table for a file with bad lines) of one file's parsed events.

        A settled file is parsed once for every process into the shared cache; a file still being
        written is parsed into this process's own Parquet file, replaced when the file grows, so that
        neither is held in memory.
        """
        signature = log_file.signature()
        cached = self._files.get(signature[0])
        if cached and cached[0] == signature:
            return cached[1]
        if cached:
            self._forget(*cached[2:])
        parquet = self._parsed_cache(log_file, signature)
        skipped: list[SkippedLine] = []
        table: str | None = None
        own: Path | None = None
        if parquet.exists():
            source = f"read_parquet({sql_string(str(parquet))})"
        else:
            settled = time.time() - signature[2] / 1e9 > _SETTLED_SECONDS
            live_name = f"{parquet.stem}.{os.getpid()}.{next(self._names)}.parquet"
            target = parquet if settled else self._live_dir() / live_name
            partial = self._partial(target)
            table = f"_pw_file_{next(self._names)}"
            in_parquet, skipped = load_file(self._con, log_file, table, partial)
            source = table
            if partial is not None and in_parquet:
                written = self._publish(partial, parquet) if settled else partial.replace(target)
                source, table, own = f"read_parquet({sql_string(str(written))})", None, None if settled else written
            self._quarantine(log_file, skipped)
        self._files[signature[0]] = (signature, source, table, own)
        self._skipped[signature[0]] = skipped
        return source

    def _live_dir(self) -> Path:
        return self.state_dir / "parsed" / "live"

    def _forget(self, table: str | None, own: Path | None) -> None:
        """Release a replaced parse: drop its table, or delete this process's own Parquet file."""
        if table is not None:
            self._con.execute(f"DROP TABLE IF EXISTS {table}")
        if own is not None:
            own.unlink(missing_ok=True)

    def _sweep_live(self) -> None:
        """Delete the live parses and partial files left by processes that are gone (killed before they could)."""
        leftovers = [(p, p.name.rsplit(".", 3)[-3]) for p in self._live_dir().glob("*.parquet")]
        for folder in (self.state_dir / "parsed", self._live_dir()):
            leftovers += [(p, p.name.rsplit(".", 2)[-2]) for p in folder.glob(".*.tmp")]
        for path, owner in leftovers:
            if owner.isdigit() and not _alive(int(owner)):
                path.unlink(missing_ok=True)

    def _parsed_cache(self, log_file: LogFile, signature: tuple[str, int, int]) -> Path:
        """Where the parsed form of one version (size, mtime) of a log file is kept as Parquet."""
        version = f"{signature[1]}_{signature[2]}_{_CACHE_FORMAT}"
        name = f"{log_file.path.parent.name}__{log_file.path.name}__{version}.parquet"
        return self.state_dir / "parsed" / name

    def _partial(self, target: Path) -> Path | None:
        """A private file to parse a log file into before it is renamed, or None when the state dir cannot take it."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return target.with_name(f".{target.name}.{os.getpid()}.tmp")

    def _publish(self, partial: Path, target: Path) -> Path:
        """Make a parsed file visible to every process, removing the older versions of the same log file.

        Settled files are the only ones kept, so the next scans skip the JSON parsing of each day once
        it is no longer written; a failure here only costs speed, never data.
        """
        prefix = target.name.rsplit("__", 1)[0] + "__"
        for old in target.parent.glob(prefix + "*.parquet"):
            if old != target:
                old.unlink(missing_ok=True)
        try:
            partial.replace(target)
        except OSError:
            return partial
        return target

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
        """A view of the window's predictions over the parsed files, built once per window and file versions.

        Nothing the size of the window is materialised: only the rows to drop as repeated prediction
        ids and the latest feedback label per prediction are kept, so memory follows the feedback,
        not the predictions, and each aggregate reads just the columns it needs.
        """
        files = discover(self.log_dir)
        days = {d.date() for d in window.days()}
        first_day = min(days)
        prediction_files = [f for f in files if f.day in days]
        feedback_files = [f for f in files if f.day >= first_day]
        key = (model, window, tuple(f.signature() for f in feedback_files))
        if key in self._windows:
            self._windows.move_to_end(key)
            return self._windows[key][0]
        sources = {f.path: self._file_source(f) for f in feedback_files}
        self._report = ScanReport(skipped=[s for f in feedback_files for s in self._skipped.get(str(f.path), [])])
        pred_union = _union([sources[f.path] for f in prediction_files])
        fb_union = _union([sources[f.path] for f in feedback_files])
        n = next(self._names)
        view, dups, feedback = f"_pw_window_{n}", f"_pw_dups_{n}", f"_pw_fb_{n}"
        inside = (
            f"dataset = 'ml.prediction' AND model = {sql_string(model)}"
            f" AND ts >= {_timestamp(window.start)} AND ts < {_timestamp(window.end)}"
        )
        predictions = f"(SELECT * FROM ({pred_union}) WHERE {inside})"
        # A prediction id seen twice counts once: the first by time, file and line stays.  Candidates
        # come from the 64-bit hash stored at parse time, so the common case (no repeats) costs a pass
        # over one integer column; the predictions are read twice rather than held as a shared CTE.
        self._con.execute(
            f"""CREATE TABLE {dups} AS SELECT file, line_no FROM (
                SELECT file, line_no, row_number() OVER (PARTITION BY pid ORDER BY ts, file, line_no) AS rn
                FROM {predictions}
                WHERE pid_hash IN (SELECT pid_hash FROM {predictions} GROUP BY pid_hash HAVING count(*) > 1))
            WHERE rn > 1"""
        )
        self._con.execute(
            f"""CREATE TABLE {feedback} AS SELECT pid, label AS fb_label FROM ({fb_union})
            WHERE dataset = 'ml.feedback' AND (model = ? OR model IS NULL) AND label IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY pid ORDER BY ts DESC, file DESC, line_no DESC) = 1""",
            [model],
        )
        (repeated,) = self._con.execute(f"SELECT count(*) FROM {dups}").fetchone() or (0,)
        (labelled,) = self._con.execute(f"SELECT count(*) FROM {feedback}").fetchone() or (0,)
        joins = f" ANTI JOIN {dups} USING (file, line_no)" if repeated else ""
        label = "CAST(NULL AS VARCHAR)"
        if labelled:
            joins += f" LEFT JOIN {feedback} USING (pid)"
            label = "CAST(fb_label AS VARCHAR)"
        spread = sorted(
            {
                name
                for (name, *_rest) in self._con.execute(f"DESCRIBE SELECT * FROM ({pred_union})").fetchall()
                if name.startswith((FEATURE_PREFIX, GROUP_PREFIX))
            }
        )
        extra = "".join(f", {quote(c)}" for c in spread)
        self._con.execute(
            f"""CREATE VIEW {view} AS
            SELECT pid AS prediction_id, ts AS "timestamp", version AS model_version, entity AS entity_id,
                   outcome, error_type, error_message, score, latency AS latency_ms, rate AS sample_rate,
                   1.0 / rate AS _w, CAST(prediction AS VARCHAR) AS prediction, {label} AS label{extra}
            FROM {predictions}{joins}"""
        )
        self._report.duplicates = int(repeated)
        self._windows[key] = (view, dups, feedback)
        while len(self._windows) > _MAX_WINDOWS:
            _, old = self._windows.popitem(last=False)
            self._con.execute(f"DROP VIEW IF EXISTS {old[0]}")
            for table in old[1:]:
                self._con.execute(f"DROP TABLE IF EXISTS {table}")
        return view

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
        with self._lock:
            for _signature, _source, table, own in self._files.values():
                self._forget(table, own)
            self._files.clear()
        self._state.close()
        super().close()
