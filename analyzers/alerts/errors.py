"""Every error the alerting part raises, in one tree: catch ``AlertError`` for all of them.

::

    AlertError
    ├── ChannelConfigError   a channel's settings cannot work (a bot token without a channel); also a ValueError
    └── DeliveryError        a channel did not take a message; the notification stays in the outbox
        ├── ChannelUnreachable   no answer (connection refused, timeout), after the channel's own retries
        ├── ChannelRefused       an answer that refused the message (HTTP status, API error such as invalid_auth)
        │   └── RetryLater       the channel asked to wait longer than ``delivery.max_wait`` (a long Retry-After)
        └── DeliveryInterrupted  the process is stopping (SIGTERM): the message waits for the next run

The text of a ``DeliveryError`` is safe to log and to store with the pending notification: a channel
replaces its secrets (tokens, webhook URLs) before raising.
"""

from __future__ import annotations


class AlertError(Exception):
    """Base of every alerting error."""


class ChannelConfigError(AlertError, ValueError):
    """A channel's configuration cannot work; the message names the setting."""


class DeliveryError(AlertError):
    """A channel did not take the message; the text names the channel and never holds a secret."""


class ChannelUnreachable(DeliveryError):
    """The channel could not be reached (network, timeout) after its retries."""


class ChannelRefused(DeliveryError):
    """The channel answered and refused the message (HTTP status or API error)."""


class RetryLater(ChannelRefused):
    """The channel asked to be left alone for ``after_s`` seconds, longer than predwatch waits in one go."""

    def __init__(self, message: str, after_s: float) -> None:
        super().__init__(message)
        self.after_s = after_s


class DeliveryInterrupted(DeliveryError):
    """Delivery stopped because the process is stopping; nothing was lost, the outbox keeps the message."""
