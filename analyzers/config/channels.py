"""Where alerts go and how: the channels' settings, delivery limits and routes.

A channel is a configuration field whose value is a :class:`ChannelSettings` (named after the field,
like ``slack``) or a mapping of them (named by their keys, like each entry of ``webhooks``).  Routes
say which channels receive which alerts; without ``routes`` every channel receives every alert.
"""

from __future__ import annotations

import string
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from analyzers.config.base import Strict, duration

Kind = Literal["firing", "reminder", "resolved"]
SeverityName = Literal["info", "warning", "critical"]

# The fields of an alert that a webhook's URL and body templates may name, as ``{model}``; ``{alert}``
# alone as a body value stands for the whole alert object (see analyzers.alerts.channels.webhook).
TEMPLATE_FIELDS = frozenset(
    ("id", "kind", "key", "model", "job", "subject", "severity", "summary", "window_start", "window_end", "since")
)
WHOLE_ALERT = "{alert}"


class ChannelSettings(Strict):
    """What every channel's settings are: a configuration section the channel table knows how to open."""

    @property
    def enabled(self) -> bool:
        """Whether the settings are complete enough to send (Slack without a token or webhook is not)."""
        return True


class SlackConfig(ChannelSettings):
    token: str | None = None
    channel: str | None = None
    webhook_url: str | None = None
    base_url: str | None = None
    mention: str | None = None  # e.g. "<!here>" for critical alerts
    report_url: str | None = None  # embedded mode: where the HTML reports are served, linked from alerts
    max_items: int = Field(default=10, ge=1, le=40)  # firing alerts listed in one message before "and N more"

    @model_validator(mode="after")
    def _how(self) -> SlackConfig:
        if self.token and not self.channel:
            raise ValueError("a bot token needs a 'channel'")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.webhook_url)


class BasicAuth(Strict):
    username: str
    password: str


def _placeholders(text: str) -> set[str]:
    try:
        return {name for _literal, name, _spec, _conv in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid template: {exc}") from None


def check_template(value: Any) -> None:
    """Every ``{name}`` in a template's strings is an alert field (``{alert}`` only as a whole value)."""
    if isinstance(value, dict):
        for item in value.values():
            check_template(item)
    elif isinstance(value, list):
        for item in value:
            check_template(item)
    elif isinstance(value, str) and value != WHOLE_ALERT:
        unknown = _placeholders(value) - TEMPLATE_FIELDS
        if unknown:
            known = ", ".join(sorted(TEMPLATE_FIELDS))
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}} in {value!r}: use {known} or {{alert}}")


class WebhookConfig(ChannelSettings):
    """A generic HTTP endpoint: one signed JSON POST per alert transition."""

    url: str  # may name alert fields: https://airflow/api/v1/dags/retrain_{model}/dagRuns
    secret: str | None = None  # HMAC-SHA256 key for X-Predwatch-Signature; from the environment: "${VAR}"
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. Authorization: "Bearer ${GITHUB_TOKEN}"
    auth: BasicAuth | None = None  # HTTP basic authentication (Airflow's REST API)
    body: dict[str, Any] | None = None  # a template; default: the alert itself
    accept_status: list[int] = Field(default_factory=list)  # answers that mean "already done" (Airflow's 409)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("a webhook 'url' starts with http:// or https://")
        check_template(url)
        return url

    @field_validator("body")
    @classmethod
    def _body(cls, body: dict[str, Any] | None) -> dict[str, Any] | None:
        if body is not None:
            check_template(body)
        return body


class DeliveryConfig(Strict):
    """Bounds on one delivery: no wait inside a run is longer than ``max_wait``; the outbox keeps the rest."""

    timeout: timedelta = timedelta(seconds=10)  # one HTTP request
    max_wait: timedelta = timedelta(seconds=30)  # longest single wait (a Retry-After, a backoff) before giving up
    retries: int = Field(default=2, ge=0, le=10)  # retries of a connection error or a 5xx inside one delivery
    report_url: str | None = None  # link to the HTML report in every message ({model} is replaced)

    _d = field_validator("timeout", "max_wait", mode="before")(lambda v: duration(v))


class ConfirmConfig(Strict):
    """Act only when the alert held in ``held`` of the last ``of`` windows of its job (this one included)."""

    held: int = Field(ge=1)
    of: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _fits(self) -> ConfirmConfig:
        if self.held > self.of:
            raise ValueError(f"'held' ({self.held}) cannot be more than 'of' ({self.of})")
        return self


class RouteConfig(Strict):
    """Which alerts go to which channels: model and job names (globs), severities, kinds, and confirmation."""

    channels: list[str] = Field(min_length=1)
    models: list[str] = Field(default_factory=lambda: ["*"])
    jobs: list[str] = Field(default_factory=lambda: ["*"])
    severities: list[SeverityName] | None = None  # default: every severity
    kinds: list[Kind] | None = None  # default: firing, reminder and resolved
    confirm: ConfirmConfig | None = None
