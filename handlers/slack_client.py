"""The Slack Web API client of every part that calls Slack: the Bolt app, the group lookups, the
outbox's sender."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.settings import Settings


def slack_client(settings: Settings, *, retries: bool = True) -> WebClient:
    """The Web API client: retries connection errors, 429s (honouring Retry-After) and 5xx —
    except for the outbox's sender (``retries=False``), which does its own retrying without
    blocking the other channels' messages."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    kwargs: dict[str, Any] = {
        "token": token,
        "timeout": 10,
        "retry_handlers": [
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ]
        if retries
        else [],
    }
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    return WebClient(**kwargs)
