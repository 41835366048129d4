"""Delivery to Slack with slack-sdk: ``chat.postMessage`` with a bot token, or an incoming webhook.

slack-sdk's retry handlers wait out rate limits (429 with Retry-After) and retry connection errors;
anything that still fails raises :class:`DeliveryError`, whose text never contains the token or the
webhook URL, so the notification stays in the outbox for the next round.
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.webhook import WebhookClient

from analyzers.alerts.render import Message
from analyzers.config.models import SlackConfig


class DeliveryError(RuntimeError):
    """Slack did not take the message; the text is safe to log."""


class SlackSender:
    """Posts messages to the configured channel or webhook."""

    def __init__(
        self,
        config: SlackConfig,
        timeout: int = 15,
        max_retries: int = 2,
        retry_interval: RetryIntervalCalculator | None = None,
    ) -> None:
        self._secrets = [s for s in (config.token, config.webhook_url) if s]
        interval = retry_interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
        handlers = [
            RateLimitErrorRetryHandler(max_retry_count=max_retries),
            ConnectionErrorRetryHandler(max_retry_count=max_retries, interval_calculator=interval),
        ]
        self._channel = config.channel
        self._client: WebClient | None = None
        self._webhook: WebhookClient | None = None
        if config.token:
            kwargs: dict[str, Any] = {"token": config.token, "timeout": timeout, "retry_handlers": handlers}
            if config.base_url:
                kwargs["base_url"] = config.base_url.rstrip("/") + "/"
            self._client = WebClient(**kwargs)
            self.target = f"Slack channel {config.channel}"
        elif config.webhook_url:
            self._webhook = WebhookClient(config.webhook_url, timeout=timeout, retry_handlers=handlers)
            self.target = "Slack incoming webhook"
        else:
            raise ValueError("Slack needs a bot token and channel, or an incoming webhook URL")

    def send(self, message: Message) -> None:
        """Post one message; raises :class:`DeliveryError` when Slack does not accept it."""
        try:
            if self._client is not None:
                self._client.chat_postMessage(channel=self._channel, text=message.fallback(), blocks=message.blocks())
                return
            assert self._webhook is not None
            response = self._webhook.send(text=message.fallback(), blocks=message.blocks())
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            status = exc.response.status_code if exc.response is not None else "?"
            raise DeliveryError(
                self._safe(f"{self.target} refused the message: HTTP {status} {error or ''}".strip())
            ) from None
        except Exception as exc:
            raise DeliveryError(self._safe(f"{self.target} unreachable: {type(exc).__name__}: {exc}")) from None
        if response.status_code != 200:
            raise DeliveryError(
                self._safe(f"{self.target} refused the message: HTTP {response.status_code} {response.body}")
            )

    def _safe(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
