"""The terminal: each message as a panel of plain text (no channel configured, a dry run, the demo)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from analyzers.alerts.message import Item, Message

_COLOR = {"critical": "red", "warning": "yellow", "info": "blue"}


def line(item: Item, when: str) -> str:
    """One alert: ``warning · drift feature:amount: amount drifted ... (new)``."""
    label = "resolved" if item.kind == "resolved" else ("still firing" if item.kind == "reminder" else item.severity)
    was = "was " if item.kind == "resolved" else ""
    return f"{label} · {item.job} {item.subject}: {was}{item.message} ({when})"


def text(message: Message) -> str:
    """The message as plain text: headline and window, one line per alert, what else fires, links."""
    lines = [f"• {line(item, message.when(item))}" for item in message.items]
    if message.more:
        lines.append(f"• and {message.more} more firing")
    footer = message.footer()
    if footer:
        lines.append(footer)
    lines += [f"{link.label}: {link.url}" for link in message.links]
    return "\n".join([f"{message.headline()} ({message.window})", *lines])


class TerminalSender:
    """Prints each message as a panel on ``console`` (stdout, or stderr when ``quiet``)."""

    name = "terminal"
    target = "terminal"
    per_alert = False

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        self.console = console or Console(file=sys.stderr if quiet else sys.stdout, highlight=False)

    def send(self, message: Message) -> None:
        border = _COLOR.get(message.severity, "white") if message.firing else "green"
        panel = Panel(Text(text(message)), title=f"predwatch alert: {message.model}", border_style=border)
        self.console.print(panel)
