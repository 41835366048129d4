"""Fewer, bigger Parquet files: a file's many small parts merged, settled days compacted per service and month.

A file written all day gets a part per analysis; every ``MERGE_FAN_IN`` parts of one level are merged into one
of the next, so each line is rewritten a few times at most.  A day untouched for ``SETTLED_SECONDS`` moves into
its month's bin (a bin takes days until it holds ``BIN_ROWS`` lines; a day of ``ALONE_ROWS`` lines or more
keeps one part of its own), so that a window of two years reads a few dozen files, not 730.  Every new file is
written under a private name and renamed into place; what it replaces is retired, not deleted.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analyzers.store.logfiles import FileVersion, LogFile
from analyzers.store.parsed_state import Entry, Part, RegistryState
from analyzers.store.private_files import make_private, temporary_name

SETTLED_SECONDS = 600  # a file untouched this long is no longer written: it may be compacted into its month
MERGE_FAN_IN = 8  # this many parts of one level are merged into one part of the next level
BIN_ROWS = 1_000_000  # a month's bin takes settled days until it holds this many lines
ALONE_ROWS = 100_000  # a settled day with this many lines is big enough to be read as its own file


@dataclass
class Compactor:
    """Rewrites Parquet files of one service under ``folder``, recording the changes in a registry state."""

    folder: Path

    def forget(self, con: duckdb.DuckDBPyConnection, state: RegistryState, name: str, now: float) -> None:
        """Drop a log file's lines (it was replaced, truncated or deleted): retire its parts, rewrite its bins."""
        entry = state.files.pop(name)
        for part in entry.parts:
            state.retired[part.name] = now
        for bin_id in entry.bins:
            current = state.bins.get(bin_id)
            if current is None:
                continue
            path = self.folder / current.name
            remaining = [n for n, e in state.files.items() if bin_id in e.bins]
            state.retired[current.name] = now
            if not remaining:
                del state.bins[bin_id]
                continue
            target = self.folder / self._bin_name(bin_id)
            rows = self._copy(con, [path], target, where=f"file <> {_sql_string(entry.path)}")
            state.bins[bin_id] = Part(target.name, rows)

    # ---- merging and compaction -------------------------------------------------------------
    def _copy(
        self,
        con: duckdb.DuckDBPyConnection,
        sources: Sequence[Path],
        target: Path,
        *,
        where: str | None = None,
    ) -> int:
        """Write the rows of ``sources`` (in order) to ``target``, published atomically; the number of rows."""
        partial = temporary_name(target)
        listing = "[" + ", ".join(_sql_string(str(p)) for p in sources) + "]"
        condition = f" WHERE {where}" if where is not None else ""
        try:
            ((rows,),) = con.execute(
                f"COPY (SELECT * FROM read_parquet({listing}, union_by_name=true){condition})"
                f" TO {_sql_string(str(partial))} (FORMAT parquet)"
            ).fetchall()
            make_private(partial)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return int(rows)

    def merge(self, con: duckdb.DuckDBPyConnection, state: RegistryState) -> bool:
        """Merge a file's trailing parts of one level once there are ``MERGE_FAN_IN`` of them (a file written
        all day gets a part per analysis; merging keeps them few, rewriting each line a few times at most)."""
        changed = False
        now = time.time()
        for name, entry in state.files.items():
            while mergeable(entry):
                tail = _tail(entry)
                target = self.folder / f"{name}.merged.{time.time_ns()}.parquet"
                rows = self._copy(con, [self.folder / p.name for p in tail], target)
                for part in tail:
                    state.retired[part.name] = now
                entry.parts = [*entry.parts[: -len(tail)], Part(target.name, rows, tail[0].level + 1)]
                changed = True
        return changed

    def _bin_name(self, bin_id: str) -> str:
        return f"{bin_id}.{time.time_ns()}.parquet"

    def compact(
        self,
        con: duckdb.DuckDBPyConnection,
        state: RegistryState,
        versions: dict[str, tuple[LogFile, FileVersion]],
        now: float,
    ) -> bool:
        """Move the parts of settled files into their month's bins (a bin fills up to ``BIN_ROWS`` lines).

        A settled file is one not modified for ``SETTLED_SECONDS``.  A file big enough on its own
        (``ALONE_ROWS``) keeps a single part of its own instead.
        """
        changed = False
        settled: dict[str, list[str]] = {}
        for name, entry in sorted(state.files.items(), key=lambda item: (item[1].day, item[0])):
            if name not in versions or not compactable(entry, versions[name][1], now):
                continue
            if sum(p.rows for p in entry.parts) >= ALONE_ROWS:
                if len(entry.parts) > 1:
                    target = self.folder / f"{name}.whole.{time.time_ns()}.parquet"
                    rows = self._copy(con, [self.folder / p.name for p in entry.parts], target)
                    for part in entry.parts:
                        state.retired[part.name] = now
                    entry.parts = [Part(target.name, rows, entry.parts[-1].level + 1)]
                    changed = True
                continue
            settled.setdefault(entry.day[:7], []).append(name)
        for month, names in settled.items():
            pending = list(names)
            while pending:
                open_bins = sorted(b for b in state.bins if b.startswith(month + ".") and state.bins[b].rows < BIN_ROWS)
                bin_id = open_bins[-1] if open_bins else f"{month}.{_next_bin(state, month)}"
                current = state.bins.get(bin_id)
                room = BIN_ROWS - (current.rows if current else 0)
                taken: list[str] = []
                while pending and (not taken or sum(p.rows for p in state.files[pending[0]].parts) <= room):
                    name = pending.pop(0)
                    room -= sum(p.rows for p in state.files[name].parts)
                    taken.append(name)
                sources = ([self.folder / current.name] if current else []) + [
                    self.folder / p.name for name in taken for p in state.files[name].parts
                ]
                target = self.folder / self._bin_name(bin_id)
                rows = self._copy(con, sources, target)
                if current:
                    state.retired[current.name] = now
                state.bins[bin_id] = Part(target.name, rows)
                for name in taken:
                    entry = state.files[name]
                    for part in entry.parts:
                        state.retired[part.name] = now
                    entry.parts = []
                    if bin_id not in entry.bins:
                        entry.bins.append(bin_id)
                changed = True
        return changed


def _tail(entry: Entry) -> list[Part]:
    """The file's last parts that share the level of its last one."""
    level = entry.parts[-1].level
    return list(itertools.takewhile(lambda p: p.level == level, reversed(entry.parts)))[::-1]


def mergeable(entry: Entry) -> bool:
    return len(entry.parts) >= MERGE_FAN_IN and len(_tail(entry)) >= MERGE_FAN_IN


def _settled(entry: Entry, version: FileVersion, now: float) -> bool:
    """Not modified for ``SETTLED_SECONDS``, and looked at since."""
    return now - version.mtime_ns / 1e9 > SETTLED_SECONDS and entry.matches(version)


def compactable(entry: Entry, version: FileVersion, now: float) -> bool:
    """A settled file with parts that go into its month's bin, or (big enough alone) that become one part."""
    if not entry.parts or not _settled(entry, version, now):
        return False
    return len(entry.parts) > 1 or sum(p.rows for p in entry.parts) < ALONE_ROWS


def _next_bin(state: RegistryState, month: str) -> int:
    numbers = [int(b.split(".")[1]) for b in state.bins if b.startswith(month + ".")]
    return max(numbers, default=-1) + 1


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
