"""Findings and alert state in one SQLite file (WAL): safe for a daemon and a CLI at the same time.

WAL lets readers and one writer work at once; ``busy_timeout`` makes a second writer wait instead of
failing; alert state carries a version number for optimistic concurrency.  The database is created 0600
(SQLite gives its WAL and shared-memory files the same mode) in a 0700 state directory.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from analyzers.findings import Finding
from analyzers.store.base import ConflictError, FindingStore, StateStore, StoreError
from analyzers.store.private_files import FILE_MODE, private_dir
from analyzers.timeutil import format_time, parse_time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS findings (
    id TEXT PRIMARY KEY, model TEXT NOT NULL, job TEXT NOT NULL,
    window_start TEXT NOT NULL, window_end TEXT NOT NULL, doc BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS findings_by_model ON findings (model, job, window_end);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, version INTEGER NOT NULL, doc BLOB NOT NULL);
"""


class SqliteState(FindingStore, StateStore):
    """Findings and versioned state documents in ``<state_dir>/predwatch.sqlite``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "predwatch.sqlite"
        try:
            private_dir(self.path.parent)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        except OSError as exc:
            raise StoreError(
                f"cannot create the state directory {self.path.parent}: {exc.strerror or exc}; set state.path to a"
                " writable folder"
            ) from exc
        self._local = threading.local()
        with self._conn() as con:
            con.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA busy_timeout=60000")
            _write_ahead_log(con)
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def write_findings(self, findings: Sequence[Finding]) -> None:
        rows = [
            (f.id, f.model, f.job, format_time(f.window.start), format_time(f.window.end), orjson.dumps(f.to_dict()))
            for f in findings
        ]
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("INSERT OR REPLACE INTO findings VALUES (?, ?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def read_findings(
        self, model: str | None = None, job: str | None = None, since: Any = None, until: Any = None
    ) -> list[Finding]:
        clauses, params = [], []
        if model is not None:
            clauses.append("model = ?")
            params.append(model)
        if job is not None:
            clauses.append("job = ?")
            params.append(job)
        if since is not None:
            clauses.append("window_end >= ?")
            params.append(format_time(parse_time(since)))
        if until is not None:
            clauses.append("window_end <= ?")
            params.append(format_time(parse_time(until)))
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._conn().execute(f"SELECT doc FROM findings{where} ORDER BY window_end, window_start, job", params)
        return [Finding.from_dict(orjson.loads(doc)) for (doc,) in rows.fetchall()]

    def get_state(self, key: str) -> tuple[dict[str, Any], int] | None:
        row = self._conn().execute("SELECT doc, version FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else (orjson.loads(row[0]), row[1])

    def put_state(self, key: str, doc: dict[str, Any], version: Any = None) -> int:
        body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            if version is None:
                try:
                    con.execute("INSERT INTO state VALUES (?, 1, ?)", (key, body))
                except sqlite3.IntegrityError:
                    raise ConflictError(f"state {key!r} already exists") from None
                new_version = 1
            else:
                cursor = con.execute(
                    "UPDATE state SET doc = ?, version = version + 1 WHERE key = ? AND version = ?",
                    (body, key, int(version)),
                )
                if cursor.rowcount != 1:
                    raise ConflictError(f"state {key!r} changed since version {version}")
                new_version = int(version) + 1
            con.execute("COMMIT")
            return new_version
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def delete_state(self, key: str, version: Any = None) -> None:
        con = self._conn()
        if version is None:
            con.execute("DELETE FROM state WHERE key = ?", (key,))
            return
        cursor = con.execute("DELETE FROM state WHERE key = ? AND version = ?", (key, int(version)))
        if cursor.rowcount != 1:
            raise ConflictError(f"state {key!r} changed since version {version}")

    def list_state(self, prefix: str = "") -> dict[str, tuple[dict[str, Any], int]]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._conn().execute(
            "SELECT key, doc, version FROM state WHERE key LIKE ? ESCAPE '\\' ORDER BY key", (escaped + "%",)
        )
        return {key: (orjson.loads(doc), version) for key, doc, version in rows.fetchall()}

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


def _write_ahead_log(con: sqlite3.Connection, *, patience_s: float = 60.0) -> None:
    """Put the file in WAL mode (it stays so).  Two processes opening a new file at once can both try; SQLite
    then answers "database is locked" at once, without waiting on the busy timeout, so the switch is retried."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
