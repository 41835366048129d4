"""Parse one range of a log file (its new complete lines) into one Parquet part, and record it.

The range is checked line by line (``linescan``) and its columns expected (as the file's earlier parts, the
service's latest file, or the range's first lines show them).  It is first read in one strict pass, told the
keys of its first lines (``strict_source``); where that read stops at a line, a line that cannot be an event is
set aside and a key first seen there is told of, and the range read strictly again (twice at most).  If it still
refuses the range, its keys are found on every line, lines that cannot be events set aside as placeholders, and
it is read with DuckDB's typed reader (``jsonparse``).
A part is written under a private name and renamed into place, so that nothing half written is ever listed.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from analyzers.store.jsonparse import (
    BLANK,
    KeyScan,
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
from analyzers.store.logfiles import FileVersion, LogFile
from analyzers.store.parsed_state import Entry, Part
from analyzers.store.private_files import make_private, private_dir, temporary_name
from analyzers.store.strict_source import PREAMBLE_LINES, preamble, write_source

_SAMPLE_LINES = 2000  # lines read to expect the types of keys a service never had before
# A range smaller than this is read in two passes: on small files the strict read's copy and sample cost more than
# the key pass it saves (365 daily files of 2.5 MB: 22.2 s against 18.9 s; 110 MiB files: 25% less CPU).
STRICT_MIN_BYTES = 16 * 2**20
_STRICT_TRIES = 3  # strict reads of a range; what a line one stops at holds (not an event, a new key) helps the next
_STOPPED_AT = re.compile(r'", (?:at byte \d+ )?in line (\d+):')  # where DuckDB's JSON reader stopped, in its message
_STOPPED_LINES = "_pw_stopped"  # the lines around the one a strict read stopped at, read once
_NAMES = itertools.count()


class ParseError(RuntimeError):
    """A log file could not be parsed; the message names it and says what to do."""


class NeedsWholeBudget(Exception):
    """A range parsed beside another ran out of the memory budget they share: it is parsed again alone."""


class _StrictRefused(Exception):
    """The strict read gave another number of lines than were counted (it skips blank lines)."""


class _ReadInPlaceMoved(Exception):
    """A file read in place gave another number of lines than were counted: a writer appended while DuckDB read."""


@dataclass
class RangeParser:
    """Parses ranges of one service's log files into parts under ``folder``; ``hint`` is the columns a new file
    is expected to have (the service's latest file's)."""

    folder: Path
    limits: Limits
    hint: Schema
    strict: bool = True  # whether ranges are first tried in one strict pass (off once its reader ran out of memory)

    def parse(
        self, con: duckdb.DuckDBPyConnection, log_file: LogFile, version: FileVersion, entry: Entry, *, alone: bool
    ) -> None:
        """Parse the file's complete lines after ``entry.size`` into a new part, and record it in ``entry``.

        A range parsed beside another (``alone`` false) that runs out of memory raises ``NeedsWholeBudget``;
        alone, the typed read falls back to reading line by line."""
        try:
            self._parse(con, log_file, version, entry, careful=False, alone=alone)
        except _ReadInPlaceMoved:
            self._parse(con, log_file, version, entry, careful=True, alone=alone)

    def _parse(
        self,
        con: duckdb.DuckDBPyConnection,
        log_file: LogFile,
        version: FileVersion,
        entry: Entry,
        *,
        careful: bool,
        alone: bool,
    ) -> None:
        """One attempt; ``careful`` reads a private copy of the range even where DuckDB could read the file itself."""
        private_dir(self.folder)
        scratch = temporary_name(self.folder / f"{log_file.name}.ndjson", str(next(_NAMES)))
        hint = self.hint

        def scanned_range(replace: set[int] | None = None, careful: bool = careful) -> ScannedRange:
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

        scanned = scanned_range(careful=careful)
        target = self.folder / _part_name(log_file, entry)
        partial = temporary_name(target)
        try:
            if not scanned.lines and not scanned.set_aside:
                entry.size = scanned.end
                return
            lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
            first: KeyScan | None = None
            if self.strict and scanned.end - entry.size >= STRICT_MIN_BYTES:
                try:
                    first = find_keys(con, lines, self.limits, scanned.placeholders, sample=_SAMPLE_LINES)
                except duckdb.Error:
                    first = None  # DuckDB refuses the file as it is: the two passes read a checked copy
            stopped_at: list[SetAside] = []  # lines the strict read stopped at that cannot be events
            if first is not None and first.bad and all(b.reason != BLANK for b in first.bad):
                # First lines that cannot be events (often a line a killed writer left torn, which then begins the
                # next range) are set aside as the two passes would set them aside, and the range read strictly.
                stopped_at, first.bad = first.bad, []
                scanned.release()
                scanned = scanned_range({b.line for b in stopped_at})
                lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
            told = hint  # the columns the strict read expects, with the types of keys it learned where it stopped
            if first is not None and first.lines != scanned.lines:  # more lines than the first: one strict pass
                for attempt in range(_STRICT_TRIES):
                    strict = self._read_strictly(
                        con, scanned, log_file, entry, told, lines, partial, first, stopped_at, alone=alone
                    )
                    if not isinstance(strict, int) or attempt == _STRICT_TRIES - 1:
                        break
                    # The strict read stopped at a line: one that cannot be an event is set aside as the two
                    # passes would set it aside, and the range read again with it as a placeholder; a key first
                    # seen there (a feature first logged late) is told of, with the type that line shows, and the
                    # range read again.  (DuckDB names the line after a malformed one: the line before is looked
                    # at too.)  A value of a learned key of another type stops the read: the two passes read it.
                    try:  # the two lines, read once (each query over the range's lines reads all of them)
                        there_lines = con.sql(
                            f"SELECT * FROM ({lines}) WHERE line_no BETWEEN {strict - 1} AND {strict}"
                        ).to_arrow_table()
                    except duckdb.Error:  # DuckDB refuses the file as it is (bytes that are not UTF-8): two passes
                        break
                    con.register(_STOPPED_LINES, there_lines)
                    try:
                        at_line = f"SELECT * FROM {_STOPPED_LINES}"
                        there = find_keys(con, at_line, self.limits, scanned.placeholders)
                        learned = None if there.bad else first.learn(there, known=entry.schema.columns)
                        if learned is not None:
                            _, typed = find_types(con, at_line, learned, scanned.placeholders)
                            told = Schema({**told.columns, **typed.columns}, told.values, told.others)
                    finally:
                        con.unregister(_STOPPED_LINES)
                    if there.bad and there.bad[0].reason != BLANK:
                        stopped_at += there.bad
                        scanned.release()
                        scanned = scanned_range({b.line for b in stopped_at})
                        lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
                    elif learned is None:
                        break
                if isinstance(strict, tuple):
                    schema, written, others = strict
                    make_private(partial)
                    os.replace(partial, target)
                    return self._record(entry, scanned, target, written, schema, others)
            try:
                if first is not None and first.lines == scanned.lines:
                    keys, direct = first, True  # the first lines were the whole range: their keys are every line's
                else:
                    keys = find_keys(con, lines, self.limits, scanned.placeholders)
                    direct = keys.lines == scanned.lines
            except duckdb.Error as exc:
                if scanned.temporary or (isinstance(exc, duckdb.OutOfMemoryException) and not alone):
                    raise
                direct = False
            if not direct:
                # DuckDB refused the file as it is (a line too long, bytes that are not UTF-8), or saw another number
                # of lines (empty lines, carriage returns): check every line, and read a copy.
                scanned = scanned_range(careful=True)
                lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
                keys = find_keys(con, lines, self.limits, scanned.placeholders)
            accepted, refused = accepted_keys(keys, entry.schema, self.limits)
            bad = stopped_at + keys.bad + (lines_with_keys(con, lines, refused) if refused else [])
            blank = {b.line for b in bad if b.reason == BLANK}
            bad = [b for b in bad if b.reason != BLANK]
            if bad or blank:  # such lines are read as placeholders, so that the typed reader never sees them
                scanned.release()
                scanned = scanned_range({b.line for b in bad} | blank)
                lines = lines_sql(scanned.source, scanned.first_line, scanned.longest)
            schema = self._expected(con, lines, accepted, entry.schema, hint, scanned.placeholders)
            try:
                written = self._write(con, scanned, log_file, schema, bad, partial, alone=alone)
            except (duckdb.ConversionException, duckdb.InvalidInputException):
                # A value not of its expected type, or a field DuckDB's reader cannot take (``ml.features`` that
                # is not an object): one exact pass finds every line's types and such lines, then read again.
                more, schema = find_types(con, lines, accepted, scanned.placeholders)
                bad = sorted({b.line: b for b in [*bad, *more]}.values(), key=lambda b: b.line)
                scanned.release()
                # A checked copy: DuckDB's reader may have stopped at the value before a line it cannot take as it
                # is (bytes that are not UTF-8); blank lines stay placeholders.
                scanned = scanned_range({b.line for b in bad} | blank, careful=True)
                written = self._write(con, scanned, log_file, schema, bad, partial, alone=alone)
            make_private(partial)
            os.replace(partial, target)
        except _ReadInPlaceMoved:
            partial.unlink(missing_ok=True)
            raise
        except duckdb.OutOfMemoryException as exc:
            if not alone:
                raise NeedsWholeBudget(str(log_file.path)) from exc
            raise ParseError(_parse_failure(log_file, exc)) from exc
        except duckdb.Error as exc:
            raise ParseError(_parse_failure(log_file, exc)) from exc
        finally:
            scanned.release()
            scratch.unlink(missing_ok=True)
        self._record(entry, scanned, target, written, schema, keys.others)

    def _record(
        self, entry: Entry, scanned: ScannedRange, target: Path, written: int, schema: Schema, others: Mapping[str, Any]
    ) -> None:
        entry.parts.append(Part(target.name, written))
        entry.size = scanned.end
        entry.lines += scanned.lines
        entry.schema.columns.update(schema.columns)
        entry.schema.values.update(schema.values)
        entry.schema.add_others(others, most=self.limits.max_keys_per_file)

    def _read_strictly(
        self,
        con: duckdb.DuckDBPyConnection,
        scanned: ScannedRange,
        log_file: LogFile,
        entry: Entry,
        hint: Schema,
        lines: str,
        partial: Path,
        first: KeyScan,
        bad: list[SetAside],
        *,
        alone: bool,
    ) -> tuple[Schema, int, dict[str, list[str]]] | int | None:
        """The range read in one pass, when its ``first`` lines' keys (with the file's earlier parts and the
        service's latest file) are every key it holds, ``bad`` lines set aside: its schema, rows and the keys seen
        but not read.  The line of the range where DuckDB stopped, when it names one (a key first seen there, a
        line that is not a JSON object).  None when the strict read refuses the range otherwise (a blank line, a
        value not of its expected type) or cannot be tried: the two passes read it then."""
        accepted, refused = accepted_keys(first, entry.schema, self.limits)
        if first.bad or refused or len(accepted) > self.limits.max_keys_per_line:
            return None
        others = Schema()
        for more in (hint.others, entry.schema.others, {k: sorted(v) for k, v in first.others.items()}):
            others.add_others(more, most=self.limits.max_keys_per_file + 1)
        if any(len(keys) > self.limits.max_keys_per_file for keys in others.others.values()):
            return None
        schema = self._expected(con, lines, accepted, entry.schema, hint, scanned.placeholders)
        source = temporary_name(self.folder / f"{log_file.name}.strict.ndjson")
        try:
            head = preamble(schema, others.others)
            write_source(scanned, head, source)
            longest = max(scanned.longest, *map(len, head.splitlines()))
            written = self._write(
                con, scanned, log_file, schema, bad, partial, alone=alone, strict_source=(source, longest)
            )
        except duckdb.OutOfMemoryException:
            partial.unlink(missing_ok=True)
            if not alone:
                raise
            self.strict = False  # the JSON reader does not fit this budget: the two passes read line by line
            return None
        except (duckdb.Error, UnicodeDecodeError) as exc:
            partial.unlink(missing_ok=True)
            stopped = _STOPPED_AT.search(_message(exc))
            return int(stopped.group(1)) - PREAMBLE_LINES - 1 + scanned.first_line if stopped else None
        except (_StrictRefused, OSError):  # OSError: the file shrank or went while it was copied
            partial.unlink(missing_ok=True)
            return None
        finally:
            source.unlink(missing_ok=True)
        return schema, written, others.others

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
        *,
        alone: bool,
        strict_source: tuple[Path, int] | None = None,
    ) -> int:
        """Write the range's part to ``partial``: read by DuckDB's JSON reader with the schema's columns, or from
        ``strict_source`` (``strict_source.write_source``, with its longest line), which refuses keys its sample
        lines do not hold."""
        source, longest = strict_source or (scanned.source, scanned.longest)
        set_aside = sorted({s.line: s for s in [*scanned.set_aside, *bad]}.values(), key=lambda s: s.line)
        blank = scanned.placeholders - {s.line for s in set_aside}

        def write(by_line: bool) -> int:
            return write_part(
                con,
                source,
                file=log_file.path,
                day=log_file.day,
                first_line=scanned.first_line,
                schema=schema,
                set_aside=set_aside,
                blank=blank,
                longest=longest,
                target=partial,
                by_line=by_line,
                preamble_lines=PREAMBLE_LINES if strict_source else 0,
            )

        try:
            rows = write(by_line=False)
        except duckdb.OutOfMemoryException:
            partial.unlink(missing_ok=True)
            if not alone or strict_source:
                raise
            rows = write(by_line=True)  # the JSON reader's buffers do not fit the memory budget: line by line
        if rows + len(blank) != scanned.lines:
            if strict_source:  # the JSON reader skips blank lines: the two passes find them
                raise _StrictRefused(log_file.path)
            if not scanned.temporary:
                raise _ReadInPlaceMoved(log_file.path)
            raise ParseError(f"parsing {log_file.path} lost track of its line numbers; it is parsed again next run")
        return rows


def _message(exc: duckdb.Error | UnicodeDecodeError) -> str:
    """A DuckDB error's message.  DuckDB cuts the line it quotes (``Object {...} has unknown key``) at a byte
    count, which may fall inside a character: its Python binding then raises ``UnicodeDecodeError`` over the
    message's bytes, which are decoded here with the cut character replaced."""
    if isinstance(exc, UnicodeDecodeError):
        return bytes(exc.object).decode("utf-8", "replace")
    return str(exc)


def _part_name(log_file: LogFile, entry: Entry) -> str:
    return f"{log_file.name}.{entry.inode}.{entry.size}.{time.time_ns()}.parquet"


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
