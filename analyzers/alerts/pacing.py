"""How long a delivery may wait, and a way to stop it: every wait inside a delivery goes through here.

No single wait is longer than ``delivery.max_wait`` (a longer Retry-After leaves the message in the
outbox with the time to try again) and every wait ends at once when the process is asked to stop
(SIGTERM), so ``predwatch run`` stops within seconds even in the middle of a delivery.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from analyzers.alerts.errors import DeliveryInterrupted, RetryLater
from analyzers.config.models import DeliveryConfig


@dataclass
class Pacing:
    """The delivery limits of one process: request timeout, longest wait, retries, and its stop signal."""

    timeout_s: float = 10.0
    max_wait_s: float = 30.0
    retries: int = 2
    stop: threading.Event = field(default_factory=threading.Event)
    backoff_s: float = 0.5  # the first retry's wait; each next one waits twice as long (up to max_wait)

    @classmethod
    def from_config(cls, config: DeliveryConfig, stop: threading.Event | None = None) -> Pacing:
        return cls(
            timeout_s=config.timeout.total_seconds(),
            max_wait_s=config.max_wait.total_seconds(),
            retries=config.retries,
            stop=stop or threading.Event(),
        )

    def backoff(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (from 0) after a connection error or a 5xx."""
        return min(self.backoff_s * 2**attempt, self.max_wait_s)

    def allows(self, seconds: float) -> bool:
        """Whether a wait this long is allowed inside one delivery."""
        return seconds <= self.max_wait_s and not self.stop.is_set()

    def wait(self, seconds: float, what: str) -> None:
        """Wait, unless the wait is too long (``RetryLater``) or the process stops (``DeliveryInterrupted``)."""
        if seconds > self.max_wait_s:
            raise RetryLater(f"{what}: asked to wait {seconds:g} s, more than delivery.max_wait", seconds)
        self.check(what)
        if self.stop.wait(max(seconds, 0.0)):
            raise DeliveryInterrupted(f"{what}: stopped while waiting to retry")

    def check(self, what: str) -> None:
        """Raise ``DeliveryInterrupted`` when the process is stopping."""
        if self.stop.is_set():
            raise DeliveryInterrupted(f"{what}: stopped before sending")
