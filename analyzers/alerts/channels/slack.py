"""Slack with slack-sdk: ``chat.postMessage`` with a bot token, or an incoming webhook; Block Kit messages.

slack-sdk's retry handlers wait out rate limits (429 with Retry-After) and retry connection errors;
anything that still fails raises :class:`~analyzers.alerts.errors.ChannelRefused` or
:class:`~analyzers.alerts.errors.ChannelUnreachable`, whose text never contains the token or the webhook
URL, so the notification stays in the outbox for the next round.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from analyzers.alerts.errors import ChannelConfigError, ChannelRefused, ChannelUnreachable
from analyzers.alerts.message import Item, Message
from analyzers.config.models import SlackConfig

TEXT_LIMIT = 3000  # characters in one section's text
FALLBACK_LIMIT = 4000  # characters of the top-level text Slack shows in notifications
HEADER_LIMIT = 150
EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
RESOLVED_EMOJI = ":white_check_mark:"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Slack mrkdwn control characters in user data (feature names, group values)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(item: Item) -> str:
    subject, message = _escape(item.subject), _escape(item.message)
    if item.kind == "resolved":
        return f"{RESOLVED_EMOJI} *resolved* · *{item.job}* `{subject}`: was {message}"
    label = "still firing" if item.kind == "reminder" else item.severity
    since = f" (since {item.since})" if item.since else ""
    return f"{EMOJI.get(item.severity, '')} *{label}* · *{item.job}* `{subject}`: {message}{since}"


def _headline(message: Message) -> str:
    emoji = EMOJI.get(message.severity, "") if message.firing else RESOLVED_EMOJI
    return f"{emoji} {message.headline()}"


def mention_for(message: Message, mention: str | None) -> str | None:
    """The configured mention (e.g. ``<!here>``) when something critical fires, else ``None``."""
    return mention if mention and message.severity == "critical" and message.firing else None


def text(message: Message, mention: str | None = None) -> str:
    """The plain-text (mrkdwn) form Slack shows in notifications and to screen readers."""
    body = "\n".join(f"• {_line(item)}" for item in message.items)
    if message.more:
        body += f"\n• and {message.more} more"
    links = "".join(f"\n{link.label}: {link.url}" for link in message.links)
    prefix = f"{mention} " if mention else ""
    return f"{prefix}{_headline(message)} ({message.window})\n{body}{links}"


def blocks(message: Message, mention: str | None = None) -> list[dict[str, Any]]:
    """Block Kit: header, one section per alert, context, and link buttons."""
    header = _cut(f"{_headline(message)} · {message.window}", HEADER_LIMIT)
    out: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}]
    if mention:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": mention}})
    for item in message.items:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(_line(item), TEXT_LIMIT)}})
    if message.more:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": f"_and {message.more} more_"}})
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"window {message.window} · predwatch"}]})
    if message.links:
        buttons = [
            {"type": "button", "text": {"type": "plain_text", "text": link.label}, "url": link.url}
            for link in message.links
        ]
        out.append({"type": "actions", "elements": buttons})
    return out


class SlackSender:
    """Posts messages to the configured channel or webhook."""

    def __init__(
        self,
        config: SlackConfig,
        *,
        timeout: int = 15,
        max_retries: int = 2,
        retry_interval: RetryIntervalCalculator | None = None,
    ) -> None:
        self._secrets = [s for s in (config.token, config.webhook_url) if s]
        self._mention = config.mention
        interval = retry_interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
        handlers = [
            RateLimitErrorRetryHandler(max_retry_count=max_retries),
            ConnectionErrorRetryHandler(max_retry_count=max_retries, interval_calculator=interval),
        ]
        self._client: WebClient | None = None
        self._webhook: WebhookClient | None = None
        self._channel = ""
        if config.token and config.channel:
            kwargs: dict[str, Any] = {"token": config.token, "timeout": timeout, "retry_handlers": handlers}
            if config.base_url:
                kwargs["base_url"] = config.base_url.rstrip("/") + "/"
            self._client = WebClient(**kwargs)
            self._channel = config.channel
            self.target = f"Slack channel {config.channel}"
        elif config.webhook_url:
            self._webhook = WebhookClient(config.webhook_url, timeout=timeout, retry_handlers=handlers)
            self.target = "Slack incoming webhook"
        else:
            raise ChannelConfigError("Slack needs a bot token and channel, or an incoming webhook URL")

    def send(self, message: Message) -> None:
        """Post one message; raises a ``DeliveryError`` when Slack does not take it."""
        mention = mention_for(message, self._mention)
        fallback, rendered = _cut(text(message, mention), FALLBACK_LIMIT), blocks(message, mention)
        try:
            if self._client is not None:
                self._client.chat_postMessage(channel=self._channel, text=fallback, blocks=rendered)
                return
            assert self._webhook is not None
            response = self._webhook.send(text=fallback, blocks=rendered)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            status = exc.response.status_code if exc.response is not None else "?"
            raise ChannelRefused(
                self._safe(f"{self.target} refused the message: HTTP {status} {error or ''}".strip())
            ) from None
        except Exception as exc:
            raise ChannelUnreachable(self._safe(f"{self.target} unreachable: {type(exc).__name__}: {exc}")) from None
        if response.status_code != 200:
            raise ChannelRefused(
                self._safe(f"{self.target} refused the message: HTTP {response.status_code} {response.body}")
            )

    def _safe(self, detail: str) -> str:
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return detail
