"""Alert channels: where messages go.  Every channel is a :class:`Sender`.

``CHANNELS`` maps each kind of channel settings (a :class:`~analyzers.config.channels.ChannelSettings`
class) to the function that opens its sender; ``open_channels`` opens every configured channel by name,
or the terminal when there is none.  Adding a channel (PagerDuty, say) is its settings class and a
field in the configuration, a module here with its sender, and one row in ``CHANNELS``: routing, the
outbox (one delivery record per channel), retries, ``status`` and the tests' seams come with it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from rich.console import Console

from analyzers.alerts.channels.slack import SlackSender
from analyzers.alerts.channels.terminal import TerminalSender
from analyzers.alerts.channels.webhook import WebhookSender
from analyzers.alerts.message import Message
from analyzers.alerts.pacing import Pacing
from analyzers.alerts.routing import TERMINAL
from analyzers.config.models import ChannelSettings, Config, SlackConfig, WebhookConfig


class Sender(Protocol):
    """Delivers messages; raises ``DeliveryError`` (with a text free of secrets) when one is not taken.

    ``name`` is the channel's name in routes and the outbox, ``target`` says where messages go for people
    (``Slack channel #ml-alerts``); ``per_alert`` channels take one alert per message (webhooks), the
    others one message per model.
    """

    @property
    def name(self) -> str: ...

    @property
    def target(self) -> str: ...

    @property
    def per_alert(self) -> bool: ...

    def send(self, message: Message) -> None: ...


@runtime_checkable
class LooksBack(Protocol):
    """A channel that can tell which transitions it already received (Slack's history), so a message
    whose delivery is in doubt after a crash is not sent twice."""

    def already_delivered(self, ids: Collection[str], since: datetime) -> set[str]: ...


Opener = Callable[[str, Any, Pacing], "Sender | None"]


def _slack(name: str, settings: SlackConfig, pacing: Pacing) -> Sender | None:
    return SlackSender(settings, name=name, pacing=pacing) if settings.enabled else None


def _webhook(name: str, settings: WebhookConfig, pacing: Pacing) -> Sender:
    return WebhookSender(settings, name=name, pacing=pacing)


CHANNELS: dict[type[ChannelSettings], Opener] = {SlackConfig: _slack, WebhookConfig: _webhook}


def open_channels(
    config: Config, *, pacing: Pacing | None = None, console: Console | None = None, quiet: bool = False
) -> dict[str, Sender]:
    """Every configured channel that can send, by name; the terminal (``console``, or stdout, stderr
    when ``quiet``) when there is none."""
    pacing = pacing or Pacing.from_config(config.delivery)
    senders: dict[str, Sender] = {}
    for name, settings in config.channel_settings().items():
        sender = CHANNELS[type(settings)](name, settings, pacing)
        if sender is not None:
            senders[name] = sender
    return senders or {TERMINAL: TerminalSender(console, quiet=quiet)}


def open_channel(config: Config, *, console: Console | None = None, quiet: bool = False) -> Sender:
    """The first configured channel, else the terminal (the demo shows where its alerts went)."""
    return next(iter(open_channels(config, console=console, quiet=quiet).values()))
