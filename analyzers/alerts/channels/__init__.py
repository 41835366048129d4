"""Alert channels: where messages go.  A channel is anything with a ``target`` and a ``send(message)``.

``open_channel`` returns the first channel the configuration sets up, in the order of ``CHANNELS``,
and the terminal when there is none.  Adding a channel is a module here with a sender (it renders
:class:`~analyzers.alerts.message.Message` its own way and raises a
:class:`~analyzers.alerts.errors.DeliveryError` when the message is not taken), its settings in the
configuration, and one row in ``CHANNELS``.  ``RecordingSender`` goes through the same seam in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rich.console import Console

from analyzers.alerts.channels.slack import SlackSender
from analyzers.alerts.channels.terminal import TerminalSender
from analyzers.alerts.message import Message
from analyzers.config.models import Config


class Sender(Protocol):
    """Delivers one message; raises ``DeliveryError`` (with a text free of secrets) when it is not taken."""

    @property
    def target(self) -> str:
        """Where messages go, for people: ``Slack channel #ml-alerts``, ``terminal``."""
        ...

    def send(self, message: Message) -> None: ...


def _slack(config: Config) -> Sender | None:
    return SlackSender(config.slack) if config.slack is not None and config.slack.enabled else None


CHANNELS: dict[str, Callable[[Config], Sender | None]] = {"slack": _slack}


def open_channel(config: Config, *, console: Console | None = None, quiet: bool = False) -> Sender:
    """The configured channel, else the terminal (``console``, or stdout; stderr when ``quiet``)."""
    for opener in CHANNELS.values():
        sender = opener(config)
        if sender is not None:
            return sender
    return TerminalSender(console, quiet=quiet)
