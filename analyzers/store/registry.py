"""Which Parquet files hold which log file's lines, per service: a registry kept beside them, like Filebeat's.

For each log file the registry keeps its identity (device, inode), the bytes and lines parsed so far and a
fingerprint of its first bytes, and the Parquet files that hold those lines: its own *parts* (one per
parse of newly appended bytes) and *bins* (one file per service and month into which settled days are
compacted, so that a window of two years is a few dozen files, not 730).  A file that grew is parsed from
where the last parse stopped; one that shrank, changed identity or changed its first bytes (rotated,
truncated, replaced) is parsed again from the start.

Every change is written under new file names and published by replacing the registry atomically, under a
lock that one process at a time holds; readers never take it.  A Parquet file a newer registry no longer
lists is *retired*, and deleted only when it has been retired longer than ``KEEP_RETIRED`` (longer than
any job runs by default), so a reader holding an older registry keeps reading what it listed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from analyzers.processes import process_alive
from analyzers.store.compaction import Compactor, compactable, mergeable
from analyzers.store.jsonparse import Limits
from analyzers.store.logfiles import ROOT_SERVICE, FileVersion, LogFile, fingerprint
from analyzers.store.parsed_state import Entry, RegistryState, Snapshot, latest_schema
from analyzers.store.private_files import owner_pid, private_dir, write_atomically
from analyzers.store.range_parse import NeedsWholeBudget, ParseError, RangeParser

__all__ = ["KEEP_RETIRED", "ParseError", "Registry", "Snapshot", "service_folder"]

KEEP_RETIRED = 3600.0  # seconds a replaced Parquet file stays readable (the default job timeout is 15 minutes)
PARSERS = min(os.cpu_count() or 1, 2)  # files parsed at once
PARALLEL_BYTES = 64 * 2**20  # a range bigger than this is big: parsed alone unless the budget holds two
# DuckDB memory a big range's parse takes: the JSON reader's buffers (about 80 MiB) and a Parquet row group
# (``jsonparse.ROW_GROUP_BYTES``, about 55 MiB held); two side by side ran within the default 256MB without
# spilling (7 files of 110 MiB: 7.1-7.4 s against 11.4-11.6 s one at a time, 3-4% more CPU).
BIG_PARSE_BYTES = 120 * 2**20
_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}  # as DuckDB shows them
_REGISTRY = "registry.json"
_LOCK = ".lock"


class Registry:
    """The parsed form of one service's log files under ``folder``; ``sync`` brings it up to date."""

    def __init__(self, folder: Path, limits: Limits) -> None:
        self.folder = folder
        self.limits = limits
        self._loaded: tuple[tuple[int, int, int] | None, RegistryState] = (None, RegistryState())
        self._compactor = Compactor(folder)

    # ---- reading ----------------------------------------------------------------------------
    def _read(self) -> RegistryState:
        """The published registry (re-read only when its file changed)."""
        path = self.folder / _REGISTRY
        try:
            stat = path.stat()
        except FileNotFoundError:
            return RegistryState()
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # each publication is a new file
        if self._loaded[0] != stamp:
            try:
                self._loaded = (stamp, RegistryState.from_json(path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError):
                self._loaded = (stamp, RegistryState())  # unreadable: everything is parsed again
        return self._loaded[1]

    def sync(
        self,
        con: duckdb.DuckDBPyConnection,
        files: Sequence[LogFile],
        present: set[str] | None = None,
        *,
        now: float | None = None,
    ) -> Snapshot:
        """Parse what changed in ``files`` (this service's), forget the files no longer ``present`` (names of the
        service's files on disk; all are kept when None), compact and collect; the registry as published."""
        now = time.time() if now is None else now
        versions = {}
        for log_file in files:
            with contextlib.suppress(FileNotFoundError):
                versions[log_file.name] = (log_file, FileVersion.of(log_file.path))
        state = self._read()
        gone = set() if present is None else set(state.files) - present
        if not gone and not self._work(state, versions, now):
            return state.snapshot(self.folder)
        with self._locked():
            state = RegistryState.from_json(self._read().to_json())  # a private copy
            for name in sorted(set(state.files) & gone):  # a deleted log file takes its lines with it
                self._compactor.forget(con, state, name, now)
            changed = bool(gone)
            changed |= self._update(con, state, versions, now)
            changed |= self._compactor.merge(con, state)
            changed |= self._compactor.compact(con, state, versions, now)
            changed |= self._collect(state, now)
            if changed:  # a version never used before, even after parsed/ was deleted
                state.version = max(state.version + 1, time.time_ns())
                write_atomically(self.folder / _REGISTRY, state.to_json())
            return self._read().snapshot(self.folder)

    def _work(self, state: RegistryState, versions: dict[str, tuple[LogFile, FileVersion]], now: float) -> bool:
        """Whether anything is to be done: a file changed or is new, parts wait to be merged or compacted, or a
        retired file is past its grace."""
        for name, (_, version) in versions.items():
            entry = state.files.get(name)
            if entry is None or not entry.matches(version):
                return True
            if mergeable(entry) or compactable(entry, version, now):
                return True
        return any(now - since > KEEP_RETIRED for since in state.retired.values())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        private_dir(self.folder)
        fd = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ---- parsing ----------------------------------------------------------------------------
    def _update(
        self,
        con: duckdb.DuckDBPyConnection,
        state: RegistryState,
        versions: dict[str, tuple[LogFile, FileVersion]],
        now: float,
    ) -> bool:
        work: list[tuple[str, LogFile, FileVersion, Entry]] = []
        for name, (log_file, version) in sorted(versions.items()):
            entry = state.files.get(name)
            if entry is not None and entry.matches(version):
                continue
            if entry is not None and not self._appended(entry, log_file, version):
                self._compactor.forget(con, state, name, now)
                entry = None
            if entry is None:
                entry = Entry(str(log_file.path), log_file.day.isoformat(), version.dev, version.inode, 0, 0, 0, "", 0)
            work.append((name, log_file, version, entry))
        parser = RangeParser(self.folder, self.limits, latest_schema(state))

        retry: list[tuple[str, LogFile, FileVersion, Entry]] = []

        def parse(item: tuple[str, LogFile, FileVersion, Entry], alone: bool = PARSERS == 1) -> None:
            _, log_file, version, entry = item
            if version.size > entry.size:
                cursor = con.cursor()  # a connection of its own, so that files are parsed side by side
                try:
                    parser.parse(cursor, log_file, version, entry, alone=alone)
                except NeedsWholeBudget:
                    retry.append(item)
                finally:
                    cursor.close()

        # Much of DuckDB's pipeline for one range runs on one core (the line numbering keeps file order): ranges
        # are parsed two at a time to keep both cores busy.  A big range needs about BIG_PARSE_BYTES (the JSON
        # reader's buffers and a Parquet row group): big ones side by side only when the budget holds two, else
        # alone.  A range that runs out of the budget it shares is parsed again alone afterwards.
        side_by_side = memory_budget(con) >= PARSERS * BIG_PARSE_BYTES

        def parse_all(items: list[tuple[str, LogFile, FileVersion, Entry]]) -> None:
            big = [] if side_by_side else [i for i in items if i[2].size - i[3].size > PARALLEL_BYTES]
            for item in big:
                parse(item, alone=True)
            with ThreadPoolExecutor(max_workers=PARSERS) as pool:
                list(pool.map(parse, [i for i in items if i not in big]))
            while retry:
                parse(retry.pop(0), alone=True)

        # A new service's first files tell what the others hold: the first two are parsed side by side (when the
        # budget allows; else the first alone), each expecting its types from its own first lines, and the later
        # one's columns are the hint for the rest.
        first = work[: PARSERS if side_by_side else 1] if work and not parser.hint.columns else []
        parse_all(first)
        parser.hint = next((item[3].schema for item in reversed(first) if item[3].schema.columns), parser.hint)
        parse_all(work[len(first) :])
        for name, log_file, version, entry in work:
            entry.seen, entry.mtime_ns = version.size, version.mtime_ns
            entry.head = fingerprint(log_file.path, entry.size) if entry.size else ""
            state.files[name] = entry
        return bool(work)

    @staticmethod
    def _appended(entry: Entry, log_file: LogFile, version: FileVersion) -> bool:
        """Whether the file is the one parsed, with bytes added at most (else it is parsed again whole)."""
        if (version.dev, version.inode) != (entry.dev, entry.inode) or version.size < entry.size:
            return False
        if log_file.compressed and version.size != entry.size:
            return False
        try:
            return not entry.size or fingerprint(log_file.path, entry.size) == entry.head
        except OSError:
            return False

    def _collect(self, state: RegistryState, now: float) -> bool:
        """Delete retired files past their grace, temporary files of dead processes and files nothing lists
        (a process killed between writing a file and publishing the registry)."""
        changed = False
        for name, since in list(state.retired.items()):
            if now - since > KEEP_RETIRED:
                (self.folder / name).unlink(missing_ok=True)
                del state.retired[name]
                changed = True
        listed = {p.name for e in state.files.values() for p in e.parts} | {b.name for b in state.bins.values()}
        listed |= set(state.retired)
        for path in self.folder.iterdir():
            if path.name.endswith(".tmp"):
                pid = owner_pid(path)
                if pid is not None and pid != os.getpid() and not process_alive(pid):
                    path.unlink(missing_ok=True)
            elif path.suffix == ".parquet" and path.name not in listed:
                path.unlink(missing_ok=True)
        return changed


def memory_budget(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's memory limit in bytes (it reports it as, say, ``244.1 MiB``)."""
    ((limit,),) = con.cursor().execute("SELECT current_setting('memory_limit')").fetchall()
    number, _, unit = str(limit).partition(" ")
    return int(float(number) * _UNITS.get(unit, 1))


def service_folder(root: Path, service: str) -> Path:
    """Where a service's parsed files and registry live under ``root``."""
    return root / ("_root" if service == ROOT_SERVICE else service)
