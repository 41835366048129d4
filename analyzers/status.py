"""``predwatch status``: what runs, what fires, what waits to be delivered and what is silenced.

Read from the store's state documents (docs/alerting.md describes their shape) for the configured
models only: scheduler heartbeats, firing alerts (since when, last sent, the next reminder after the
cooldown, silenced or not), the outbox (per channel: pending or sent, attempts, last error, next try),
the active silences, the latest finding of each job, and the data quality of those findings' windows (lines
set aside by reason, with the first file:line of each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from analyzers.alerts import outbox, silences
from analyzers.alerts.dispatch import settings_of
from analyzers.alerts.message import format_moment
from analyzers.alerts.state import STATE_PREFIX, cooldown_for
from analyzers.config.models import Config
from analyzers.findings import Finding
from analyzers.findings.quality import quality_rows
from analyzers.store.base import Store
from analyzers.terminal import print_findings, print_quality
from analyzers.timeutil import format_time, parse_time

HEARTBEAT_PREFIX = "heartbeat:"


@dataclass
class Status:
    """Everything ``predwatch status`` shows, as plain data (``--format json`` prints it as it is)."""

    heartbeats: dict[str, dict[str, Any]] = field(default_factory=dict)
    firing: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    silences: list[dict[str, Any]] = field(default_factory=list)
    latest: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "heartbeats": self.heartbeats,
            "firing": self.firing,
            "outbox": self.outbox,
            "silences": self.silences,
            "latest": [f.to_dict() for f in self.latest],
            "quality": [row.to_dict() for row in quality_rows(self.latest)],
        }


def collect(store: Store, config: Config, now: datetime) -> Status:
    """The status of the configured models, read from the store."""
    active = silences.active(store, now)
    heartbeats = {
        key.removeprefix(HEARTBEAT_PREFIX): doc
        for key, (doc, _v) in store.list_state(HEARTBEAT_PREFIX).items()
        if doc.get("model") in config.models
    }
    latest: dict[tuple[str, str], Finding] = {}
    for finding in store.read_findings():
        if finding.model in config.models:
            latest[(finding.model, finding.job)] = finding
    return Status(
        heartbeats=heartbeats,
        firing=_firing(store, config, active),
        outbox=_outbox(store),
        silences=[s.to_dict() for s in active],
        latest=sorted(latest.values(), key=lambda f: (f.model, f.job)),
    )


def _firing(store: Store, config: Config, active: list[silences.Silence]) -> list[dict[str, Any]]:
    out = []
    for doc, _v in store.list_state(STATE_PREFIX).values():
        if doc.get("status") != "firing" or doc.get("model") not in config.models:
            continue
        alert = doc.get("alert") or {}
        silence = silences.covering(active, str(doc.get("key")))
        last_sent = doc.get("last_sent_at")
        sent_count = int(doc.get("sent_count") or 0)
        next_resend = None
        if silence is None and last_sent:
            job = settings_of(config, str(doc["model"]), str(doc["job"]))
            next_resend = format_time(parse_time(last_sent) + cooldown_for(job, sent_count))
        out.append(
            {
                "key": doc.get("key"),
                "severity": alert.get("severity"),
                "message": alert.get("message"),
                "since": doc.get("first_window_end"),
                "last_window_end": doc.get("last_window_end"),
                "last_sent_at": last_sent,
                "next_resend_at": next_resend,
                "sent_count": sent_count,
                "channels": list(doc.get("notified") or []),
                "silenced_by": silence.id if silence else None,
                "silenced_until": format_time(silence.until) if silence else None,
            }
        )
    return sorted(out, key=lambda a: str(a["key"]))


def _outbox(store: Store) -> list[dict[str, Any]]:
    out = []
    for key, doc in outbox.pending(store).items():
        note = doc.get("notification") or {}
        alert = note.get("alert") or {}
        for channel, record in outbox.deliveries(doc).items():
            out.append(
                {
                    "id": key.removeprefix(outbox.OUTBOX_PREFIX),
                    "key": alert.get("key"),
                    "kind": note.get("kind"),
                    "window_end": (note.get("window") or {}).get("end"),
                    "created_at": doc.get("created_at"),
                    "channel": channel,
                    "status": record.get("status"),
                    "attempts": int(record.get("attempts") or 0),
                    "last_error": record.get("last_error"),
                    "next_try_at": record.get("not_before"),
                    "in_doubt": bool(record.get("in_doubt")),
                }
            )
    return sorted(out, key=lambda e: (str(e["created_at"]), str(e["key"]), str(e["channel"])))


def _when(value: Any) -> str:
    return format_moment(value) if value else "—"


def print_status(status: Status, console: Console | None = None) -> None:
    """The status as tables for a terminal (plain text: no markup from alert texts)."""
    console = console or Console(highlight=False)
    if status.heartbeats:
        table = Table(title="scheduler heartbeats")
        for column in ("job", "last run", "window end", "status", "seconds"):
            table.add_column(column)
        for key, doc in sorted(status.heartbeats.items()):
            beat = (
                key,
                _when(doc.get("ran_at")),
                _when(doc.get("window_end")),
                doc.get("status"),
                doc.get("duration_s"),
            )
            table.add_row(*(str(v if v is not None else "—") for v in beat))
        console.print(table)
    else:
        console.print("no scheduler heartbeat yet (is `predwatch run` running?)")
    if status.firing:
        table = Table(title=f"firing alerts ({len(status.firing)})")
        for column in ("alert", "severity", "since", "last sent", "next re-send", "silenced"):
            table.add_column(column, overflow="fold")
        for a in status.firing:
            silenced = f"{a['silenced_by']} until {_when(a['silenced_until'])}" if a["silenced_by"] else "no"
            next_resend = _when(a["next_resend_at"]) if not a["silenced_by"] else "after the silence"
            table.add_row(a["key"], a["severity"], _when(a["since"]), _when(a["last_sent_at"]), next_resend, silenced)
        console.print(table)
    else:
        console.print("no alert firing")
    waiting = [e for e in status.outbox if e["status"] == "pending"]
    if waiting:
        table = Table(title=f"outbox: {len(waiting)} undelivered")
        for column in ("alert", "kind", "channel", "queued", "attempts", "next try", "last error"):
            table.add_column(column, overflow="fold")
        for e in waiting:
            error = (e["last_error"] or "—") + (
                " (may have arrived: checked before re-sending)" if e["in_doubt"] else ""
            )
            row = (
                e["key"],
                e["kind"],
                e["channel"],
                _when(e["created_at"]),
                str(e["attempts"]),
                _when(e["next_try_at"]),
            )
            table.add_row(*(str(v) for v in row), error)
        console.print(table)
    else:
        console.print("outbox: every alert delivered")
    if status.silences:
        table = Table(title=f"silences ({len(status.silences)})")
        for column in ("id", "pattern", "until", "by", "reason"):
            table.add_column(column, overflow="fold")
        for s in status.silences:
            table.add_row(s["id"], s["pattern"], _when(s["until"]), s["created_by"], s["reason"])
        console.print(table)
    if status.latest:
        print_findings(status.latest, console)
        rows = quality_rows(status.latest)
        if rows:
            print_quality(rows, console)
