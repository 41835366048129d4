"""Notifications as messages: Slack Block Kit with a plain-text fallback, and the same for terminals.

One message per model and delivery round: a headline with the model, the worst severity and the
window; one line per alert with its key numbers; "and N more" past ``max_items``; links into Kibana
Discover for the model and window and, in the embedded mode, to the HTML report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from analyzers.alerts.rules import SEVERITY_RANK
from analyzers.alerts.state import Notification
from analyzers.config.models import Config
from logshipper import schema

SLACK_TEXT_LIMIT = 3000  # characters in one section's text
SLACK_FALLBACK_LIMIT = 4000  # characters of the top-level text Slack shows in notifications
SLACK_HEADER_LIMIT = 150
EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
RESOLVED_EMOJI = ":white_check_mark:"
KIBANA_DATA_VIEW = "predwatch-ml-predictions"


@dataclass
class Message:
    """One message about one model: headline, lines, links; rendered for Slack or a terminal."""

    model: str
    severity: str
    headline: str
    window: str
    lines: list[str]
    more: int = 0
    links: list[tuple[str, str]] = field(default_factory=list)
    mention: str | None = None

    def text(self) -> str:
        """The plain-text fallback (notifications, screen readers) and the terminal form."""
        body = "\n".join(f"• {line}" for line in self.lines)
        if self.more:
            body += f"\n• and {self.more} more"
        links = "".join(f"\n{label}: {url}" for label, url in self.links)
        prefix = f"{self.mention} " if self.mention else ""
        return f"{prefix}{self.headline} ({self.window})\n{body}{links}"

    def fallback(self) -> str:
        """The plain text sent alongside the blocks, cut to what Slack shows."""
        return _cut(self.text(), SLACK_FALLBACK_LIMIT)

    def blocks(self) -> list[dict[str, Any]]:
        """Slack Block Kit: header, one section per alert, context, and link buttons."""
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _cut(f"{self.headline} · {self.window}", SLACK_HEADER_LIMIT),
                    "emoji": True,
                },
            },
        ]
        if self.mention:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": self.mention}})
        for line in self.lines:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(line, SLACK_TEXT_LIMIT)}})
        if self.more:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"_and {self.more} more_"}})
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"window {self.window} · predwatch"}]}
        )
        if self.links:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
                        for label, url in self.links
                    ],
                }
            )
        return blocks


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Slack mrkdwn control characters in user data (feature names, group values)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(n: Notification) -> str:
    a = n.alert
    subject = _escape(str(a["subject"]))
    message = _escape(str(a.get("message") or ""))
    if n.kind == "resolved":
        return f"{RESOLVED_EMOJI} *resolved* · *{a['job']}* `{subject}`: was {message}"
    label = "still firing" if n.kind == "reminder" else a["severity"]
    since = f" (since {n.since})" if n.kind == "reminder" and n.since else ""
    return f"{EMOJI.get(a['severity'], '')} *{label}* · *{a['job']}* `{subject}`: {message}{since}"


def _span(notes: Sequence[Notification]) -> tuple[str, str]:
    return min(n.window["start"] for n in notes), max(n.window["end"] for n in notes)


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


def build_message(notes: Sequence[Notification], config: Config) -> Message:
    """The message for one model's notifications, worst first."""
    ordered = sorted(
        notes, key=lambda n: (n.kind == "resolved", -SEVERITY_RANK.get(n.alert["severity"], 0), n.alert["key"])
    )
    model = ordered[0].model
    firing = [n for n in ordered if n.kind != "resolved"]
    severity = max((n.alert["severity"] for n in firing), key=lambda s: SEVERITY_RANK.get(s, 0), default="info")
    start, end = _span(ordered)
    if firing:
        headline = f"{EMOJI.get(severity, '')} {model}: {len(firing)} alert{'s' * (len(firing) != 1)} ({severity})"
    else:
        headline = f"{RESOLVED_EMOJI} {model}: {len(ordered)} alert{'s' * (len(ordered) != 1)} resolved"
    resolved = len(ordered) - len(firing)
    if firing and resolved:
        headline += f", {resolved} resolved"
    slack = config.slack
    limit = slack.max_items if slack is not None else 10
    links = []
    if config.kibana is not None:
        links.append(("Open in Kibana", kibana_discover_url(config.kibana.url, model, start, end)))
    if slack is not None and slack.report_url:
        links.append(("HTML report", slack.report_url.replace("{model}", model)))
    mention = slack.mention if slack is not None and severity == "critical" and firing else None
    return Message(
        model=model,
        severity=severity,
        headline=headline,
        window=f"{start} → {end}",
        lines=[_line(n) for n in ordered[:limit]],
        more=max(len(ordered) - limit, 0),
        links=links,
        mention=mention,
    )
