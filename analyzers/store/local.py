"""The embedded default: the logger's daily files are the indices, parsed once into Parquet and scanned with DuckDB.

A window reads the files of the days it touches (plus later days for feedback, which may arrive days after
its prediction), keeps each line whose ``@timestamp`` falls inside, counts a prediction id once, joins the
latest feedback label, and spreads ``ml.features``/``ml.groups`` into one column each.

What is parsed is kept under ``<state>/parsed/`` (see ``registry.py``): a file still being written is parsed
a little more at each read (only its new complete lines), settled days are compacted per service and month,
and every change is published atomically, so several processes may read and parse at once.

Values (``prediction``, ``label``, ``features.*``, ``groups.*``) follow the stores' value contract: a JSON
string comes back as ``str`` (``"1"`` stays ``"1"``), an integer as ``int``, a fraction as ``float`` (a column
that mixes integers and fractions in one file reads them all as ``float``: ``1 == 1.0``, so keys never split),
``true``/``false`` as ``bool``, null or absent as ``None``, an array or object as the string of its compact
JSON (counted in quality as ``nested value in <column>``).  Bad lines elsewhere in a file never change how its
good lines read.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from analyzers.findings import Finding
from analyzers.store.base import QualityReport, Query, Store, StoreError
from analyzers.store.duck import DuckAggregates
from analyzers.store.jsonparse import Limits
from analyzers.store.logfiles import Directory, LogFile
from analyzers.store.private_files import private_dir
from analyzers.store.registry import ParseError, Registry, Snapshot, service_folder
from analyzers.store.settings import DEFAULT_MEMORY_LIMIT, LocalStoreConfig
from analyzers.store.sqlite_state import SqliteState
from analyzers.store.window import EMPTY_EVENTS, WindowTables, build, quality_counts
from analyzers.timeutil import Window

_MAX_WINDOWS = 6
# Parsed files are kept per parser version and DuckDB version (``pid_hash`` is DuckDB's hash of the id).
PARSE_FORMAT = "v3-duckdb" + duckdb.__version__.replace(".", "_")


def default_state_dir(log_dir: str | os.PathLike[str]) -> Path:
    """``.predwatch/`` beside the log directory, as docs/storage.md describes it."""
    return Path(log_dir).resolve().parent / ".predwatch"


def default_limits() -> Limits:
    config = LocalStoreConfig()
    return Limits(config.max_line_bytes, config.max_keys_per_line, config.max_keys_per_file)


@dataclass(frozen=True)
class _Files:
    """The log files of the days from ``first`` on, by service, and the parsed versions of each service's."""

    first: date
    by_service: dict[str, list[LogFile]]
    snapshots: dict[str, Snapshot]


class LocalStore(DuckAggregates, Store):
    """Reads ``<log_dir>/<service>/predictions-YYYY-MM-DD.ndjson``; keeps results under ``state_dir``."""

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str] | None = None,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        limits: Limits | None = None,
    ) -> None:
        state = Path(state_dir) if state_dir is not None else default_state_dir(log_dir)
        private_dir(state)
        super().__init__(memory_limit, private_dir(state / "spill"))
        self.log_dir = Path(log_dir).resolve()
        self.state_dir = state
        self.limits = limits or default_limits()
        self._state = SqliteState(self.state_dir)
        self._directory = Directory(self.log_dir)
        self._parsed = self.state_dir / "parsed" / PARSE_FORMAT
        self._registries: dict[str, Registry] = {}
        self._windows: OrderedDict[tuple[Any, ...], WindowTables] = OrderedDict()
        self._held = threading.local()  # this thread's snapshot block, if any (see ``snapshot``)
        with self._lock:
            self._con.execute(EMPTY_EVENTS)

    # ---- scanning -------------------------------------------------------------------------
    def _registry(self, service: str) -> Registry:
        if service not in self._registries:
            self._registries[service] = Registry(service_folder(self._parsed, service), self.limits)
        return self._registries[service]

    def _table(self, query: Query, label: bool = True) -> str:
        with self._lock:
            tables = self._window(query.model, query.window)
            return tables.view if label else tables.unlabelled

    def _joined(self, query: Query, columns: Sequence[str] | None) -> bool:
        if not self._wants_label(query, columns):
            return False
        with self._lock:
            return self._window(query.model, query.window).labelled

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """The log files and their parsed versions are looked at once, at the block's first read, and held until
        it ends (a nested block shares its outer one's): a job's reads agree, and cost no ``stat`` of every file."""
        if getattr(self._held, "active", False):
            yield
            return
        self._held.active, self._held.files = True, None
        try:
            yield
        finally:
            self._held.active, self._held.files = False, None

    def _files_from(self, first: date) -> _Files:
        """The log files of the days from ``first`` on, by service, with their parsed versions: as this thread's
        snapshot block first saw them, or brought up to date now."""
        held: _Files | None = getattr(self._held, "files", None)
        if held is not None and held.first <= first:
            return held
        present: dict[str, set[str]] = {}
        by_service: dict[str, list[LogFile]] = {}
        for log_file in self._directory.files():
            present.setdefault(log_file.service, set()).add(log_file.name)
            if log_file.day >= first:
                by_service.setdefault(log_file.service, []).append(log_file)
        snapshots: dict[str, Snapshot] = {}
        for service, files in sorted(by_service.items()):
            try:
                snapshots[service] = self._registry(service).sync(self._con, files, present[service])
            except ParseError as exc:
                raise StoreError(str(exc)) from exc
            except OSError as exc:
                raise StoreError(
                    f"cannot keep parsed log lines under {self._parsed}: {exc.strerror or exc}; check that the state"
                    " directory (state.path) is writable"
                ) from exc
        fresh = _Files(first, by_service, snapshots)
        if getattr(self._held, "active", False):
            self._held.files = fresh
        return fresh

    def _window(self, model: str, window: Window) -> WindowTables:
        """The window's tables, built once per window and version of the parsed files."""
        days = {d.date() for d in window.days()}
        first = min(days)
        held = self._files_from(first)
        by_service = {s: [f for f in files if f.day >= first] for s, files in held.by_service.items()}
        by_service = {s: files for s, files in by_service.items() if files}
        snapshots = {s: held.snapshots[s] for s in by_service}
        key = (model, window, tuple((s, snap.version) for s, snap in sorted(snapshots.items())))
        if key in self._windows:
            self._windows.move_to_end(key)
            return self._windows[key]
        predictions, feedback = [], []
        for service, files in by_service.items():
            predictions += snapshots[service].paths([f.name for f in files if f.day in days])
            feedback += snapshots[service].paths([f.name for f in files])
        tables = build(self._con, model, window, predictions, feedback)
        self._windows[key] = tables
        while len(self._windows) > _MAX_WINDOWS:
            _, old = self._windows.popitem(last=False)
            old.drop(self._con)
        return tables

    def _invalidate(self) -> None:
        """Forget every window built so far (a file they read may be gone): the next read builds them again, from
        the files as they are now."""
        self._held.files = None
        with self._lock:
            for tables in self._windows.values():
                tables.drop(self._con)
            self._windows.clear()
            self._forget_described()

    def quality(self, query: Query) -> QualityReport:
        def measure() -> QualityReport:
            with self._lock:
                tables = self._window(query.model, query.window)
                lines, reasons = quality_counts(self._con, tables)
            reasons.update(self._mismatches(Query(query.model, query.window)))
            return QualityReport(lines, reasons)

        return self._retrying(f"measuring the quality of {query.model}'s lines", query, measure)

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
            self._windows.clear()
        self._state.close()
        super().close()
