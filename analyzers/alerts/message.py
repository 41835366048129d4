"""Notifications as one message per model: what to say, not how a channel shows it.

One message per model and delivery round: a headline with the model, the worst severity and the
window; one item per alert (worst first); "and N more" past ``slack.max_items``; links into Kibana
Discover for the model and window and, in the embedded mode, to the HTML report.  Each channel
renders a :class:`Message` its own way (``analyzers.alerts.channels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from analyzers.alerts.rules import SEVERITY_RANK
from analyzers.alerts.state import Kind, Notification
from analyzers.config.models import Config
from logshipper import schema

KIBANA_DATA_VIEW = "predwatch-ml-predictions"
DEFAULT_MAX_ITEMS = 10


@dataclass(frozen=True)
class Item:
    """One alert in a message: started (``firing``), still firing after its cooldown, or resolved."""

    kind: Kind
    job: str
    subject: str
    severity: str
    message: str
    since: str | None = None


@dataclass(frozen=True)
class Link:
    """A labelled link (Kibana Discover, the HTML report)."""

    label: str
    url: str


@dataclass
class Message:
    """One message about one model over ``start``..``end``: its items (worst first), how many more, links."""

    model: str
    severity: str
    start: str
    end: str
    items: list[Item]
    firing: int
    resolved: int
    more: int = 0
    links: list[Link] = field(default_factory=list)

    @property
    def window(self) -> str:
        return f"{self.start} → {self.end}"

    def headline(self) -> str:
        """``fraud: 2 alerts (warning), 1 resolved`` or ``fraud: 1 alert resolved``."""
        if not self.firing:
            return f"{self.model}: {self.resolved} alert{'s' * (self.resolved != 1)} resolved"
        text = f"{self.model}: {self.firing} alert{'s' * (self.firing != 1)} ({self.severity})"
        return text + (f", {self.resolved} resolved" if self.resolved else "")


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


def _item(n: Notification) -> Item:
    a = n.alert
    since = n.since if n.kind == "reminder" else None
    return Item(n.kind, str(a["job"]), str(a["subject"]), str(a["severity"]), str(a.get("message") or ""), since)


def build_message(notes: Sequence[Notification], config: Config) -> Message:
    """The message for one model's notifications, worst first."""
    ordered = sorted(
        notes, key=lambda n: (n.kind == "resolved", -SEVERITY_RANK.get(n.alert["severity"], 0), n.alert["key"])
    )
    model = ordered[0].model
    firing = [n for n in ordered if n.kind != "resolved"]
    severity = max((n.alert["severity"] for n in firing), key=lambda s: SEVERITY_RANK.get(s, 0), default="info")
    start, end = min(n.window["start"] for n in notes), max(n.window["end"] for n in notes)
    limit = config.slack.max_items if config.slack is not None else DEFAULT_MAX_ITEMS
    links = []
    if config.kibana is not None:
        links.append(Link("Open in Kibana", kibana_discover_url(config.kibana.url, model, start, end)))
    if config.slack is not None and config.slack.report_url:
        links.append(Link("HTML report", config.slack.report_url.replace("{model}", model)))
    return Message(
        model=model,
        severity=severity,
        start=start,
        end=end,
        items=[_item(n) for n in ordered[:limit]],
        firing=len(firing),
        resolved=len(ordered) - len(firing),
        more=max(len(ordered) - limit, 0),
        links=links,
    )
