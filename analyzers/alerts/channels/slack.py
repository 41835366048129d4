"""Slack with slack-sdk: ``chat.postMessage`` with a bot token, or an incoming webhook; Block Kit messages.

Alert lines are ``rich_text`` blocks, whose text Slack never reads as markup, so a value such as
``*bold*``, a backtick or ``<!here>`` in a feature name shows as it is; the plain-text fallback is sent
with markup off and ``&``, ``<``, ``>`` escaped.  Every wait is bounded (:mod:`analyzers.alerts.pacing`):
a rate limit whose Retry-After is longer than ``delivery.max_wait`` leaves the message in the outbox
(:class:`~analyzers.alerts.errors.RetryLater`), and a stop request ends any wait at once.

Each message carries the ids of its alert transitions in its ``metadata`` (``event_type``
``predwatch_alert``).  When a sender died between Slack's acceptance and the outbox update, the next one
reads the channel's recent history (``conversations.history``) for those ids before sending again, so the
message is not posted twice (bot token only; an incoming webhook cannot read history).  Errors never
contain the token or the webhook URL.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from analyzers.alerts.errors import (
    ChannelConfigError,
    ChannelRefused,
    ChannelUnreachable,
    DeliveryError,
    RetryLater,
)
from analyzers.alerts.message import Item, Message
from analyzers.alerts.pacing import Pacing
from analyzers.config.models import SlackConfig

TEXT_LIMIT = 3000  # characters of one alert's text
FALLBACK_LIMIT = 4000  # characters of the top-level text Slack shows in notifications
HEADER_LIMIT = 150
MAX_BLOCKS = 50
EMOJI = {"critical": "red_circle", "warning": "large_orange_circle", "info": "large_blue_circle"}
RESOLVED_EMOJI = "white_check_mark"
METADATA_EVENT = "predwatch_alert"
HISTORY_PAGES = 5  # pages of 200 messages read back when looking for a message that may have been sent
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_CANNOT_LOOK = {"missing_scope", "not_in_channel", "channel_not_found", "not_allowed_token_type"}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """The three characters Slack reads as control sequences in any text field."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _label(item: Item) -> str:
    if item.kind == "resolved":
        return "resolved"
    return "still firing" if item.kind == "reminder" else item.severity


def _emoji(item: Item) -> str:
    return RESOLVED_EMOJI if item.kind == "resolved" else EMOJI.get(item.severity, "white_circle")


def plain_line(item: Item, when: str) -> str:
    """One alert as plain text: ``warning · drift feature:amount: ... (new)``."""
    was = "was " if item.kind == "resolved" else ""
    return f"{_label(item)} · {item.job} {item.subject}: {was}{item.message} ({when})"


def _rich_line(item: Item, when: str) -> list[dict[str, Any]]:
    was = "was " if item.kind == "resolved" else ""
    return [
        {"type": "emoji", "name": _emoji(item)},
        {"type": "text", "text": " "},
        {"type": "text", "text": _label(item), "style": {"bold": True}},
        {"type": "text", "text": f" · {item.job} "},
        {"type": "text", "text": item.subject, "style": {"code": True}},
        {"type": "text", "text": _cut(f": {was}{item.message}", TEXT_LIMIT)},
        {"type": "text", "text": f"\n{when}", "style": {"italic": True}},
    ]


def _rich(lines: list[list[dict[str, Any]]]) -> dict[str, Any]:
    return {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": line} for line in lines]}


def _headline(message: Message) -> str:
    emoji = f":{EMOJI.get(message.severity, 'white_circle')}:" if message.firing else f":{RESOLVED_EMOJI}:"
    return f"{emoji} {message.headline()}"


def mention_for(message: Message, mention: str | None) -> str | None:
    """The configured mention (e.g. ``<!here>``) when something critical fires, else ``None``."""
    return mention if mention and message.severity == "critical" and message.firing else None


def text(message: Message, mention: str | None = None) -> str:
    """The plain-text fallback Slack shows in notifications and to screen readers (markup off, escaped)."""
    body = "\n".join(f"• {plain_line(item, message.when(item))}" for item in message.items)
    if message.more:
        body += f"\n• and {message.more} more firing"
    footer = message.footer()
    if footer:
        body += f"\n{footer}"
    links = "".join(f"\n{link.label}: {link.url}" for link in message.links)
    prefix = f"{mention} " if mention else ""
    return f"{prefix}{escape(message.headline())} ({message.window})\n{escape(body)}{links}"


def blocks(message: Message, mention: str | None = None) -> list[dict[str, Any]]:
    """Block Kit: header, one rich-text block per firing alert, the resolved ones together, context, links."""
    header = _cut(f"{_headline(message)} · {message.window}", HEADER_LIMIT)
    out: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}]
    if mention:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": mention}})
    firing = [item for item in message.items if item.kind != "resolved"]
    resolved = [item for item in message.items if item.kind == "resolved"]
    out.extend(_rich([_rich_line(item, message.when(item))]) for item in firing)
    if message.more:
        more = [{"type": "text", "text": f"and {message.more} more firing", "style": {"italic": True}}]
        out.append(_rich([more]))
    tail: list[dict[str, Any]] = []
    footer = message.footer()
    if footer:
        tail.append({"type": "context", "elements": [{"type": "plain_text", "text": _cut(footer, TEXT_LIMIT)}]})
    tail.append({"type": "context", "elements": [{"type": "plain_text", "text": f"{message.window} · predwatch"}]})
    if message.links:
        buttons = [
            {"type": "button", "text": {"type": "plain_text", "text": link.label}, "url": link.url}
            for link in message.links
        ]
        tail.append({"type": "actions", "elements": buttons})
    if resolved:  # every resolved alert is shown: as many per block as it takes to stay within Slack's 50
        room = max(MAX_BLOCKS - len(out) - len(tail), 1)
        per_block = -(-len(resolved) // room)
        for i in range(0, len(resolved), per_block):
            out.append(_rich([_rich_line(item, message.when(item)) for item in resolved[i : i + per_block]]))
    return out + tail


def _header(response: HttpResponse | None, name: str) -> str | None:
    if response is None:
        return None
    for key, value in (response.headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def _retry_after(response: HttpResponse | None) -> float:
    value = _header(response, "retry-after")
    try:
        return float(value) if value is not None else 1.0
    except ValueError:
        return 1.0


class _Retries(RetryHandler):
    """slack-sdk's retries within predwatch's bounds: rate limits whose Retry-After fits in ``max_wait``,
    connection errors and 5xx answers with a backoff; every wait ends at once when the process stops."""

    def __init__(self, pacing: Pacing) -> None:
        super().__init__(max_retry_count=pacing.retries)
        self.pacing = pacing

    def _delay(self, state: RetryState, response: HttpResponse | None) -> float:
        if response is not None and response.status_code == 429:
            return _retry_after(response)
        return self.pacing.backoff(state.current_attempt)

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None:
            retryable = response.status_code == 429 or response.status_code >= 500
        else:
            retryable = error is not None and not isinstance(error, TimeoutError)  # a hang is not tried again
        return retryable and self.pacing.allows(self._delay(state, response))

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        stopped = self.pacing.stop.wait(self._delay(state, response))
        state.next_attempt_requested = not stopped
        state.increment_current_attempt()


class SlackSender:
    """Posts messages to the configured channel or webhook, one message per model."""

    per_alert = False

    def __init__(self, config: SlackConfig, *, name: str = "slack", pacing: Pacing | None = None) -> None:
        self.name = name
        self._pacing = pacing or Pacing()
        self._secrets = [s for s in (config.token, config.webhook_url) if s]
        self._mention = config.mention
        self._client: WebClient | None = None
        self._webhook: WebhookClient | None = None
        self._channel = ""
        self._channel_id: str | None = None
        timeout = max(round(self._pacing.timeout_s), 1)
        handlers: list[RetryHandler] = [_Retries(self._pacing)]
        if config.token and config.channel:
            kwargs: dict[str, Any] = {"token": config.token, "timeout": timeout, "retry_handlers": handlers}
            if config.base_url:
                kwargs["base_url"] = config.base_url.rstrip("/") + "/"
            self._client = WebClient(**kwargs)
            self._channel = config.channel
            self._channel_id = config.channel if _CHANNEL_ID.match(config.channel) else None
            self.target = f"Slack channel {config.channel}"
        elif config.webhook_url:
            self._webhook = WebhookClient(config.webhook_url, timeout=timeout, retry_handlers=handlers)
            self.target = "Slack incoming webhook"
        else:
            raise ChannelConfigError("Slack needs a bot token and channel, or an incoming webhook URL")

    def send(self, message: Message) -> None:
        """Post one message; raises a ``DeliveryError`` when Slack does not take it."""
        self._pacing.check(self.target)
        mention = mention_for(message, self._mention)
        fallback, rendered = _cut(text(message, mention), FALLBACK_LIMIT), blocks(message, mention)
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"ids": ",".join(message.ids)}}
        try:
            if self._client is not None:
                answer = self._client.chat_postMessage(
                    channel=self._channel,
                    text=fallback,
                    blocks=rendered,
                    metadata=metadata,
                    mrkdwn=False,
                    unfurl_links=False,
                )
                self._channel_id = self._channel_id or answer.get("channel")
                return
            assert self._webhook is not None
            response = self._webhook.send_dict({"text": fallback, "blocks": rendered, "mrkdwn": False})
        except SlackApiError as exc:
            raise self._refused(exc.response.status_code, exc.response.get("error"), exc.response.headers) from None
        except DeliveryError:
            raise
        except Exception as exc:
            self._pacing.check(self.target)
            raise ChannelUnreachable(self._safe(f"{self.target} unreachable: {type(exc).__name__}: {exc}")) from None
        if response.status_code != 200:
            raise self._refused(response.status_code, response.body, response.headers)

    def _refused(self, status: int, error: Any, headers: Any) -> DeliveryError:
        self._pacing.check(self.target)
        if status == 429:
            after = _retry_after(HttpResponse(status_code=429, headers=dict(headers or {})))
            return RetryLater(f"{self.target} is rate limited: retry after {after:g} s", after)
        detail = f" {error}" if error else ""
        return ChannelRefused(self._safe(f"{self.target} refused the message: HTTP {status}{detail}"))

    def already_delivered(self, ids: Collection[str], since: datetime) -> set[str]:
        """Which of these transition ids are in a message of the channel's history since ``since`` (a bot
        token with ``channels:history``; ``channels:read`` too when the channel is given by name)."""
        if self._client is None or not ids:
            return set()
        try:
            channel = self._channel_id or self._find_channel()
            if channel is None:
                return set()
            found: set[str] = set()
            cursor = None
            for _ in range(HISTORY_PAGES):
                answer = self._client.conversations_history(
                    channel=channel,
                    oldest=f"{since.timestamp():.6f}",
                    limit=200,
                    include_all_metadata=True,
                    cursor=cursor,
                )
                for posted in answer.get("messages") or []:
                    meta = posted.get("metadata") or {}
                    if meta.get("event_type") == METADATA_EVENT:
                        found.update(str((meta.get("event_payload") or {}).get("ids") or "").split(","))
                cursor = (answer.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except SlackApiError as exc:
            if exc.response.get("error") in _CANNOT_LOOK:
                return set()  # without the scope to look, a message in doubt is sent again
            raise self._refused(exc.response.status_code, exc.response.get("error"), exc.response.headers) from None
        except DeliveryError:
            raise
        except Exception as exc:
            self._pacing.check(self.target)
            raise ChannelUnreachable(self._safe(f"{self.target} unreachable: {type(exc).__name__}: {exc}")) from None
        return found & set(ids)

    def _find_channel(self) -> str | None:
        """The id of the configured channel name (``conversations.list``)."""
        assert self._client is not None
        wanted = self._channel.lstrip("#")
        cursor = None
        for _ in range(HISTORY_PAGES * 2):
            answer = self._client.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
            )
            for channel in answer.get("channels") or []:
                if channel.get("name") == wanted:
                    self._channel_id = str(channel["id"])
                    return self._channel_id
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def _safe(self, detail: str) -> str:
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return detail
