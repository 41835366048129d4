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
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from analyzers.store.jsonparse import (
    BLANK,
    Limits,
    Schema,
    accepted_keys,
    find_keys,
    find_types,
    lines_sql,
    lines_with_keys,
    write_part,
)
from analyzers.store.linescan import ScannedRange, SetAside, scan
from analyzers.store.logfiles import ROOT_SERVICE, FileVersion, LogFile, fingerprint
from analyzers.store.private_files import (
    make_private,
    owner_pid,
    private_dir,
    process_alive,
    temporary_name,
    write_atomically,
)

SETTLED_SECONDS = 600  # a file untouched this long is no longer written: it may be compacted into its month
KEEP_RETIRED = 3600.0  # seconds a replaced Parquet file stays readable (the default job timeout is 15 minutes)
_SAMPLE_LINES = 2000  # lines read to expect the types of keys a service never had before
PARSERS = min(os.cpu_count() or 1, 2)  # files parsed at once
PARALLEL_BYTES = 64 * 2**20  # a range bigger than this is parsed alone
MERGE_FAN_IN = 8  # this many parts of one level are merged into one part of the next level
BIN_ROWS = 1_000_000  # a month's bin takes settled days until it holds this many lines
ALONE_ROWS = 100_000  # a settled day with this many lines is big enough to be read as its own file
_REGISTRY = "registry.json"
_LOCK = ".lock"


class ParseError(RuntimeError):
    """A log file could not be parsed; the message names it and says what to do."""


@dataclass
class Part:
    name: str
    rows: int
    level: int = 0


@dataclass
class Entry:
    """What the registry knows of one log file."""

    path: str
    day: str
    dev: int
    inode: int
    size: int  # bytes parsed: the end of the last complete line
    seen: int  # the file's size when it was last looked at (a last line not yet ended is read when it grows)
    mtime_ns: int
    head: str
    lines: int
    parts: list[Part] = field(default_factory=list)
    bins: list[str] = field(default_factory=list)
    schema: Schema = field(default_factory=Schema)

    def matches(self, version: FileVersion) -> bool:
        """Whether the file is as it was when last looked at."""
        return (self.dev, self.inode, self.seen, self.mtime_ns) == (
            version.dev,
            version.inode,
            version.size,
            version.mtime_ns,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "day": self.day,
            "dev": self.dev,
            "inode": self.inode,
            "size": self.size,
            "seen": self.seen,
            "mtime_ns": self.mtime_ns,
            "head": self.head,
            "lines": self.lines,
            "parts": [p.__dict__ for p in self.parts],
            "bins": self.bins,
            "schema": self.schema.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            data["path"],
            data["day"],
            data["dev"],
            data["inode"],
            data["size"],
            data["seen"],
            data["mtime_ns"],
            data["head"],
            data["lines"],
            [Part(**p) for p in data["parts"]],
            list(data["bins"]),
            Schema.from_json(data.get("schema")),
        )


@dataclass
class Snapshot:
    """One published state of a service's registry: its version and, per log file name, its Parquet files."""

    version: int
    files: dict[str, list[str]]
    folder: Path

    def paths(self, names: Sequence[str]) -> list[Path]:
        """The distinct Parquet files holding the given log files, in a stable order."""
        seen: dict[str, None] = {}
        for name in names:
            for parquet in self.files.get(name, []):
                seen.setdefault(parquet, None)
        return [self.folder / p for p in seen]


@dataclass
class _State:
    version: int = 0
    files: dict[str, Entry] = field(default_factory=dict)
    bins: dict[str, Part] = field(default_factory=dict)  # bin id ("2026-11.0") -> its current file
    retired: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": self.version,
                "files": {k: v.to_json() for k, v in self.files.items()},
                "bins": {k: v.__dict__ for k, v in self.bins.items()},
                "retired": self.retired,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> _State:
        raw = orjson.loads(data)
        return cls(
            raw["version"],
            {k: Entry.from_json(v) for k, v in raw["files"].items()},
            {k: Part(**v) for k, v in raw["bins"].items()},
            dict(raw["retired"]),
        )

    def snapshot(self, folder: Path) -> Snapshot:
        files = {
            name: [self.bins[b].name for b in entry.bins if b in self.bins] + [p.name for p in entry.parts]
            for name, entry in self.files.items()
        }
        return Snapshot(self.version, files, folder)


class Registry:
    """The parsed form of one service's log files under ``folder``; ``sync`` brings it up to date."""

    def __init__(self, folder: Path, limits: Limits) -> None:
        self.folder = folder
        self.limits = limits
        self._loaded: tuple[tuple[int, int, int] | None, _State] = (None, _State())
        self._names = itertools.count()

    # ---- reading ----------------------------------------------------------------------------
    def _read(self) -> _State:
        """The published registry (re-read only when its file changed)."""
        path = self.folder / _REGISTRY
        try:
            stat = path.stat()
        except FileNotFoundError:
            return _State()
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # each publication is a new file
        if self._loaded[0] != stamp:
            try:
                self._loaded = (stamp, _State.from_json(path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError):
                self._loaded = (stamp, _State())  # unreadable: everything is parsed again
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
            state = _State.from_json(self._read().to_json())  # a private copy
            for name in sorted(set(state.files) & gone):  # a deleted log file takes its lines with it
                self._forget(con, state, name, now)
            changed = bool(gone)
            changed |= self._update(con, state, versions, now)
            changed |= self._merge(con, state)
            changed |= self._compact(con, state, versions, now)
            changed |= self._collect(state, now)
            if changed:  # a version never used before, even after parsed/ was deleted
                state.version = max(state.version + 1, time.time_ns())
                write_atomically(self.folder / _REGISTRY, state.to_json())
            return self._read().snapshot(self.folder)

    def _work(self, state: _State, versions: dict[str, tuple[LogFile, FileVersion]], now: float) -> bool:
        """Whether anything is to be done: a file changed or is new, parts wait to be merged or compacted, or a
        retired file is past its grace."""
        for name, (_, version) in versions.items():
            entry = state.files.get(name)
            if entry is None or not entry.matches(version):
                return True
            if _mergeable(entry) or _compactable(entry, version, now):
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
        state: _State,
        versions: dict[str, tuple[LogFile, FileVersion]],
        now: float,
    ) -> bool:
        work: list[tuple[str, LogFile, FileVersion, Entry]] = []
        for name, (log_file, version) in sorted(versions.items()):
            entry = state.files.get(name)
            if entry is not None and entry.matches(version):
                continue
            if entry is not None and not self._appended(entry, log_file, version):
                self._forget(con, state, name, now)
                entry = None
            if entry is None:
                entry = Entry(str(log_file.path), log_file.day.isoformat(), version.dev, version.inode, 0, 0, 0, "", 0)
            work.append((name, log_file, version, entry))
        hints = [_latest_schema(state)]

        def parse(item: tuple[str, LogFile, FileVersion, Entry]) -> None:
            _, log_file, version, entry = item
            if version.size > entry.size:
                cursor = con.cursor()  # a connection of its own, so that files are parsed side by side
                try:
                    self._parse(cursor, log_file, version, entry, hints[-1])
                finally:
                    cursor.close()

        # A new service's first file tells what the others hold: parsed first, its columns are their hint.
        first = work[:1] if work and not hints[-1].columns else []
        for item in first:
            parse(item)
            hints.append(item[3].schema)
        # Parts of DuckDB's JSON pipeline run on one core (the line numbering keeps file order): small files
        # are parsed two at a time to keep both cores busy; a big one alone, so that it has the memory budget.
        rest = work[len(first) :]
        big = [item for item in rest if item[2].size - item[3].size > PARALLEL_BYTES]
        for item in big:
            parse(item)
        with ThreadPoolExecutor(max_workers=PARSERS) as pool:
            list(pool.map(parse, [item for item in rest if item not in big]))
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

    def _parse(
        self, con: duckdb.DuckDBPyConnection, log_file: LogFile, version: FileVersion, entry: Entry, hint: Schema
    ) -> None:
        """Parse the file's complete lines after ``entry.size`` into a new part (``hint``: the service's latest
        columns, what a new file's columns are expected to be)."""
        private_dir(self.folder)
        scratch = temporary_name(self.folder / f"{log_file.name}.ndjson", str(next(self._names)))

        def scanned_range(replace: set[int] | None = None, careful: bool = False) -> ScannedRange:
            try:
                return scan(
                    log_file,
                    entry.size,
                    entry.lines + 1,
                    max_line=self.limits.max_line_bytes,
                    scratch=scratch,
                    size=version.size,
                    replace=replace,
                    careful=careful,
                )
            except OSError as exc:
                raise ParseError(f"cannot read {log_file.path}: {exc.strerror or exc}") from exc

        scanned = scanned_range()
        try:
            if not scanned.lines and not scanned.set_aside:
                entry.size = scanned.end
                return
            lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
            try:
                keys = find_keys(con, lines, self.limits, scanned.placeholders)
                direct = keys.lines == scanned.lines
            except duckdb.Error:
                if scanned.temporary:
                    raise
                direct = False
            if not direct:
                # DuckDB refused the file as it is (a line too long, bytes that are not UTF-8), or saw another number
                # of lines (empty lines, carriage returns): check every line, and read a copy.
                scanned = scanned_range(careful=True)
                lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
                keys = find_keys(con, lines, self.limits, scanned.placeholders)
            accepted, refused = accepted_keys(keys, entry.schema, self.limits)
            bad = keys.bad + (lines_with_keys(con, lines, refused) if refused else [])
            blank = {b.line for b in bad if b.reason == BLANK}
            bad = [b for b in bad if b.reason != BLANK]
            if bad or blank:  # such lines are read as placeholders, so that the typed reader never sees them
                scanned.release()
                scanned = scanned_range({b.line for b in bad} | blank)
                lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
            schema = self._expected(con, lines, accepted, entry.schema, hint, scanned.placeholders)
            target = self.folder / self._part_name(log_file, entry)
            partial = temporary_name(target)
            try:
                written = self._write(con, scanned, log_file, schema, bad, partial)
            except (duckdb.ConversionException, duckdb.InvalidInputException):
                # A value not of its expected type, or a field DuckDB's reader cannot take (``ml.features`` that
                # is not an object): one exact pass finds every line's types and such lines, then read again.
                more, schema = find_types(con, lines, accepted, scanned.placeholders)
                bad = sorted({b.line: b for b in [*bad, *more]}.values(), key=lambda b: b.line)
                scanned.release()
                scanned = scanned_range({b.line for b in bad})
                written = self._write(con, scanned, log_file, schema, bad, partial)
            make_private(partial)
            os.replace(partial, target)
        except duckdb.Error as exc:
            raise ParseError(_parse_failure(log_file, exc)) from exc
        finally:
            scanned.release()
            scratch.unlink(missing_ok=True)
        entry.parts.append(Part(target.name, written))
        entry.size = scanned.end
        entry.lines += scanned.lines
        entry.schema.columns.update(schema.columns)
        entry.schema.values.update(schema.values)

    def _expected(
        self,
        con: duckdb.DuckDBPyConnection,
        lines: str,
        keys: list[tuple[str, str]],
        earlier: Schema,
        hint: Schema,
        placeholders: set[int],
    ) -> Schema:
        """The columns a range is read with: as the file's earlier parts, else as the service's latest file, else
        as the range's first lines show them."""
        known = {**hint.columns, **earlier.columns}
        values = {**hint.values, **earlier.values}
        unknown = [k for k in keys if k not in known]
        if unknown or len(values) < 2:
            _, sampled = find_types(con, lines, unknown, placeholders, sample=_SAMPLE_LINES)
            known.update(sampled.columns)
            values = {**sampled.values, **values}
        return Schema({k: known[k] for k in keys}, values)

    def _write(
        self,
        con: duckdb.DuckDBPyConnection,
        scanned: ScannedRange,
        log_file: LogFile,
        schema: Schema,
        bad: list[SetAside],
        partial: Path,
    ) -> int:
        set_aside = sorted({s.line: s for s in [*scanned.set_aside, *bad]}.values(), key=lambda s: s.line)
        blank = scanned.placeholders - {s.line for s in set_aside}

        def write(by_line: bool) -> int:
            return write_part(
                con,
                scanned.source,
                file=log_file.path,
                day=log_file.day,
                first_line=scanned.first_line,
                schema=schema,
                set_aside=set_aside,
                blank=blank,
                longest=scanned.longest,
                target=partial,
                by_line=by_line,
            )

        try:
            rows = write(by_line=False)
        except duckdb.OutOfMemoryException:
            rows = write(by_line=True)  # the JSON reader's buffers do not fit the memory budget: line by line
        if rows + len(blank) != scanned.lines:
            raise ParseError(f"parsing {log_file.path} lost track of its line numbers; it is parsed again next run")
        return rows

    def _part_name(self, log_file: LogFile, entry: Entry) -> str:
        return f"{log_file.name}.{entry.inode}.{entry.size}.{time.time_ns()}.parquet"

    def _forget(self, con: duckdb.DuckDBPyConnection, state: _State, name: str, now: float) -> None:
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

    def _merge(self, con: duckdb.DuckDBPyConnection, state: _State) -> bool:
        """Merge a file's trailing parts of one level once there are ``MERGE_FAN_IN`` of them (a file written
        all day gets a part per analysis; merging keeps them few, rewriting each line a few times at most)."""
        changed = False
        now = time.time()
        for name, entry in state.files.items():
            while _mergeable(entry):
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

    def _compact(
        self,
        con: duckdb.DuckDBPyConnection,
        state: _State,
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
            if name not in versions or not _compactable(entry, versions[name][1], now):
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

    def _collect(self, state: _State, now: float) -> bool:
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


def _latest_schema(state: _State) -> Schema:
    """The columns of the service's most recent file parsed so far (what a new file is expected to hold)."""
    entries = sorted(state.files.values(), key=lambda e: e.day)
    return next((e.schema for e in reversed(entries) if e.schema.columns), Schema())


def _tail(entry: Entry) -> list[Part]:
    """The file's last parts that share the level of its last one."""
    level = entry.parts[-1].level
    return list(itertools.takewhile(lambda p: p.level == level, reversed(entry.parts)))[::-1]


def _mergeable(entry: Entry) -> bool:
    return len(entry.parts) >= MERGE_FAN_IN and len(_tail(entry)) >= MERGE_FAN_IN


def _settled(entry: Entry, version: FileVersion, now: float) -> bool:
    """Not modified for ``SETTLED_SECONDS``, and looked at since."""
    return now - version.mtime_ns / 1e9 > SETTLED_SECONDS and entry.matches(version)


def _compactable(entry: Entry, version: FileVersion, now: float) -> bool:
    """A settled file with parts that go into its month's bin, or (big enough alone) that become one part."""
    if not entry.parts or not _settled(entry, version, now):
        return False
    return len(entry.parts) > 1 or sum(p.rows for p in entry.parts) < ALONE_ROWS


def _next_bin(state: _State, month: str) -> int:
    numbers = [int(b.split(".")[1]) for b in state.bins if b.startswith(month + ".")]
    return max(numbers, default=-1) + 1


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parse_failure(log_file: LogFile, exc: duckdb.Error) -> str:
    kind = type(exc).__name__
    if "OutOfMemory" in kind:
        return (
            f"parsing {log_file.path} ran out of the store's memory budget: raise store.local.memory_limit"
            " or lower store.local.max_line_bytes"
        )
    return (
        f"parsing {log_file.path} failed ({kind}); the file is left as it is and will be parsed again at the next"
        " run: check that the state directory is writable and has room"
    )


def service_folder(root: Path, service: str) -> Path:
    """Where a service's parsed files and registry live under ``root``."""
    return root / ("_root" if service == ROOT_SERVICE else service)
