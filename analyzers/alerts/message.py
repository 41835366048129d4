"""Notifications as messages: what to say, not how a channel shows it.

A message is about one model (or, for channels that take one alert at a time, one alert): a headline
with the model, the worst severity and counts; one item per alert, each with its own window, when it
started firing and, once resolved, how long it fired; resolved alerts are always listed (only firing
ones past ``slack.max_items`` become "and N more"); the model's other alerts still firing (within their
cooldown) and how many are silenced; links into Kibana (with the Elasticsearch store, where Kibana can
show the window) and to the HTML report.  Each channel renders a :class:`Message` its own way
(``analyzers.alerts.channels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from analyzers.alerts.rules import SEVERITY_RANK
from analyzers.alerts.state import Kind, Notification
from analyzers.config.models import Config
from analyzers.formatting import format_span
from analyzers.timeutil import parse_time
from logshipper import schema

KIBANA_DATA_VIEW = "predwatch-ml-predictions"
DEFAULT_MAX_ITEMS = 10


def format_moment(value: str | datetime) -> str:
    """A time for people: ``2026-11-26 14:05 UTC`` (seconds shown only when not zero)."""
    moment = parse_time(value)
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second or moment.microsecond else "%Y-%m-%d %H:%M")
    return f"{text} UTC"


def format_window(start: str, end: str) -> str:
    """``2026-11-26 13:00 → 14:00 UTC`` within a day, else both dates."""
    a, b = format_moment(start).removesuffix(" UTC"), format_moment(end).removesuffix(" UTC")
    if a[:10] == b[:10]:
        b = b[11:]
    return f"{a} → {b} UTC"


@dataclass(frozen=True)
class Item:
    """One alert in a message: started (``firing``), still firing after its cooldown, or resolved."""

    kind: Kind
    job: str
    subject: str
    severity: str
    message: str
    start: str
    end: str
    since: str | None = None
    key: str = ""
    id: str = ""
    summary: str = ""
    value: float | None = None
    threshold: float | None = None

    @property
    def window(self) -> str:
        return format_window(self.start, self.end)

    @property
    def lasted(self) -> timedelta | None:
        """How long the alert has fired (reminder) or fired (resolved), from the end of its first window."""
        if self.since is None or self.kind == "firing":
            return None
        return parse_time(self.end) - parse_time(self.since)

    def timing(self) -> str:
        """``new``, ``firing since 2026-11-24 00:00 UTC (2d)``, ``fired 2d 4h, since ...``."""
        if self.kind == "firing":
            if self.since and self.since != self.end:
                return f"firing since {format_moment(self.since)}"
            return "new"
        lasted = self.lasted
        span = format_span(lasted) if lasted is not None else "?"
        since = format_moment(self.since) if self.since else "?"
        if self.kind == "resolved":
            return f"after {span} (firing since {since})"
        return f"since {since} ({span})"


@dataclass(frozen=True)
class StillFiring:
    """An alert of the model that still fires but is not repeated in this message (within its cooldown)."""

    key: str
    job: str
    subject: str
    severity: str
    since: str | None


@dataclass(frozen=True)
class Link:
    """A labelled link (Kibana Discover, the HTML report)."""

    label: str
    url: str


@dataclass
class Message:
    """One message about one model: its items (firing worst first, then every resolved one), how many
    firing ones are not listed, the model's other alerts still firing, how many are silenced, and links."""

    model: str
    severity: str
    items: list[Item]
    firing: int
    resolved: int
    more: int = 0
    links: list[Link] = field(default_factory=list)
    still_firing: list[StillFiring] = field(default_factory=list)
    silenced: int = 0
    unlisted_ids: list[str] = field(default_factory=list)  # the firing notifications counted in ``more``

    @property
    def ids(self) -> list[str]:
        """The notification ids this message delivers (every item, listed or counted in ``more``)."""
        return [item.id for item in self.items] + self.unlisted_ids

    @property
    def start(self) -> str:
        return min(item.start for item in self.items)

    @property
    def end(self) -> str:
        return max(item.end for item in self.items)

    @property
    def one_window(self) -> bool:
        """Whether every item has the same window (then the headline shows it and the lines do not)."""
        return len({(item.start, item.end) for item in self.items}) == 1

    @property
    def window(self) -> str:
        """The window all items share, else the latest end: ``as of 2026-11-27 00:00 UTC``."""
        if self.one_window:
            return format_window(self.start, self.end)
        return f"as of {format_moment(self.end)}"

    def when(self, item: Item) -> str:
        """An item's timing, and its window when the message has several: ``new; window ...``."""
        return item.timing() if self.one_window else f"{item.timing()}; window {item.window}"

    def headline(self) -> str:
        """``fraud: 2 alerts (warning), 1 resolved`` or ``fraud: 1 alert resolved``."""
        if not self.firing:
            return f"{self.model}: {self.resolved} alert{'s' * (self.resolved != 1)} resolved"
        text = f"{self.model}: {self.firing} alert{'s' * (self.firing != 1)} ({self.severity})"
        return text + (f", {self.resolved} resolved" if self.resolved else "")

    def footer(self) -> str | None:
        """``also still firing: 2 (drift feature:amount since ..., ...) · 1 silenced``, or ``None``."""
        parts = []
        if self.still_firing:
            shown = ", ".join(
                f"{s.job} {s.subject}" + (f" since {format_moment(s.since)}" if s.since else "")
                for s in self.still_firing[:5]
            )
            extra = f" and {len(self.still_firing) - 5} more" if len(self.still_firing) > 5 else ""
            parts.append(f"also still firing: {len(self.still_firing)} ({shown}{extra})")
        if self.silenced:
            parts.append(f"{self.silenced} silenced")
        return " · ".join(parts) or None


def kibana_discover_url(base_url: str, model: str, start: str, end: str) -> str:
    """Kibana Discover on the predictions data view, filtered to the model, over the window."""
    kql = model.replace("\\", "\\\\").replace('"', '\\"')
    query = _rison_string(f'{schema.MODEL_NAME}:"{kql}"')
    g = f"(time:(from:'{start}',to:'{end}'))"
    a = f"(dataSource:(dataViewId:'{KIBANA_DATA_VIEW}',type:dataView),query:(language:kuery,query:'{query}'))"
    safe = "():,'!*"
    return f"{base_url.rstrip('/')}/app/discover#/?_g={quote(g, safe=safe)}&_a={quote(a, safe=safe)}"


def _rison_string(text: str) -> str:
    """The body of a rison '...' string: ``!`` and ``'`` are escaped with ``!``."""
    return text.replace("!", "!!").replace("'", "!'")


def report_url(config: Config, model: str) -> str | None:
    """The HTML report's address for a model (``delivery.report_url``, or ``slack.report_url``)."""
    template = config.delivery.report_url or (config.slack.report_url if config.slack is not None else None)
    return template.replace("{model}", model) if template else None


def links_for(config: Config, model: str, start: str, end: str) -> list[Link]:
    """Kibana Discover (only with the Elasticsearch store: Kibana cannot show local files) and the report."""
    links = []
    if config.kibana is not None and config.store.chosen()[0] == "elasticsearch":
        links.append(Link("Open in Kibana", kibana_discover_url(config.kibana.url, model, start, end)))
    report = report_url(config, model)
    if report:
        links.append(Link("HTML report", report))
    return links


def item_of(n: Notification) -> Item:
    a = n.alert
    return Item(
        kind=n.kind,
        job=str(a["job"]),
        subject=str(a["subject"]),
        severity=str(a["severity"]),
        message=str(a.get("message") or ""),
        start=n.window["start"],
        end=n.window["end"],
        since=n.since,
        key=str(a["key"]),
        id=n.id,
        summary=n.summary,
        value=a.get("value"),
        threshold=a.get("threshold"),
    )


def build_message(
    notes: Sequence[Notification],
    config: Config,
    *,
    still_firing: Sequence[StillFiring] = (),
    silenced: int = 0,
    max_items: int | None = None,
) -> Message:
    """The message for one model's notifications: firing worst first (up to ``max_items``), then every
    resolved one."""
    ordered = sorted(
        notes, key=lambda n: (n.kind == "resolved", -SEVERITY_RANK.get(n.alert["severity"], 0), n.alert["key"])
    )
    model = ordered[0].model
    firing = [n for n in ordered if n.kind != "resolved"]
    resolved = [n for n in ordered if n.kind == "resolved"]
    severity = max((n.alert["severity"] for n in firing), key=lambda s: SEVERITY_RANK.get(s, 0), default="info")
    if max_items is None:
        max_items = config.slack.max_items if config.slack is not None else DEFAULT_MAX_ITEMS
    listed = firing[:max_items] + resolved
    items = [item_of(n) for n in listed]
    start, end = min(n.window["start"] for n in notes), max(n.window["end"] for n in notes)
    here = {n.alert["key"] for n in notes}
    return Message(
        model=model,
        severity=severity,
        items=items,
        firing=len(firing),
        resolved=len(resolved),
        more=max(len(firing) - max_items, 0),
        links=links_for(config, model, start, end),
        still_firing=[s for s in still_firing if s.key not in here],
        silenced=silenced,
        unlisted_ids=[n.id for n in firing[max_items:]],
    )
