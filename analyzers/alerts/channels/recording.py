"""A channel that keeps messages instead of sending them: for tests, and for showing them later."""

from __future__ import annotations

from analyzers.alerts.errors import DeliveryError
from analyzers.alerts.message import Message


class RecordingSender:
    """Appends each message to ``messages``; with ``fail`` set it refuses them instead (an outage)."""

    def __init__(
        self,
        target: str = "recording",
        *,
        name: str = "recording",
        fail: DeliveryError | None = None,
        per_alert: bool = False,
    ) -> None:
        self.name = name
        self.target = target
        self.fail = fail
        self.per_alert = per_alert
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        if self.fail is not None:
            raise self.fail
        self.messages.append(message)
