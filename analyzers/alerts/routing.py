"""Which channels hear about an alert: the configured routes, and their ``confirm`` rule.

A route matches an alert by model and job (globs), severity and the kind of news (``firing``,
``reminder``, ``resolved``).  A route with ``confirm: {held: N, of: M}`` is for actions (a retraining
pipeline): it hears of an alert only once the alert held in N of the last M windows of its job, then of
its reminders and its resolution.  Without ``routes`` every configured channel hears of everything;
without any channel, the terminal does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from analyzers.config.models import Config, ConfirmConfig, RouteConfig

TERMINAL = "terminal"

# How many of the last ``of`` windows of a finding's job (the finding's own included) had an alert key.
HeldCount = Callable[[str, int], int]


def channel_names(config: Config) -> list[str]:
    """The channels messages go to: every configured one that can send, or the terminal when there is none."""
    return [name for name, settings in config.channel_settings().items() if settings.enabled] or [TERMINAL]


@dataclass(frozen=True)
class Route:
    """A route with its id (``routes.<index>``, how alert state remembers a confirmation)."""

    id: str
    config: RouteConfig

    def matches(self, alert: dict[str, Any], kind: str) -> bool:
        c = self.config
        return (
            any(fnmatchcase(str(alert["model"]), p) for p in c.models)
            and any(fnmatchcase(str(alert["job"]), p) for p in c.jobs)
            and (c.severities is None or alert["severity"] in c.severities)
            and (c.kinds is None or kind in c.kinds)
        )


class Routing:
    """The routes of a configuration (one route to every channel when none is configured)."""

    def __init__(self, config: Config, *, configured: bool = False) -> None:
        """``configured``: route to every configured channel, also one that cannot send here (a dry run
        reads the file without secrets), to say where alerts would go."""
        self.names = (list(config.channel_settings()) or [TERMINAL]) if configured else channel_names(config)
        if config.routes is None or self.names == [TERMINAL]:
            self.routes = [Route("all", RouteConfig(channels=self.names))]
        else:
            self.routes = [Route(f"routes.{i}", route) for i, route in enumerate(config.routes)]

    def channels(self, alert: dict[str, Any], kind: str, confirmed: Collection[str] = ()) -> list[str]:
        """The channels that hear of this kind of news about the alert (routes with ``confirm`` only once
        they confirmed it), in configuration order."""
        out: dict[str, None] = {}
        for route in self.routes:
            if route.matches(alert, kind) and (route.config.confirm is None or route.id in confirmed):
                out.update(dict.fromkeys(c for c in route.config.channels if c in self.names))
        return list(out)

    def to_confirm(self, alert: dict[str, Any], confirmed: Collection[str]) -> list[tuple[str, ConfirmConfig]]:
        """The routes with a ``confirm`` rule that would hear of this alert firing and have not confirmed it."""
        return [
            (route.id, route.config.confirm)
            for route in self.routes
            if route.config.confirm is not None and route.id not in confirmed and route.matches(alert, "firing")
        ]
