"""Answers to a slash command's `response_url`, retried on connection errors, 429s and 5xx."""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from bot.answers import ErrorResult, Reply
from bot.render import Renderable, render_slack

log = structlog.get_logger("menotime.slack")


def _retry_handlers() -> list[Any]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=2),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


def _rendered(result: Renderable, *, request_id: str) -> dict[str, Any]:
    try:
        message = render_slack(result)
        message["response_type"] = getattr(result, "audience", "ephemeral")
    except Exception:
        log.exception("render_failed", request_id=request_id, result=type(result).__name__)
        message = render_slack(
            ErrorResult(
                "internal",
                f"Something went wrong showing the answer (reference "
                f"`{request_id}`). Quote it to the MenoTime Ops maintainers.",
                request_id,
            )
        )
        message["response_type"] = "ephemeral"
    return message


def send_reply(
    response_url: str, reply: Reply, *, request_id: str, replace_original: bool | None = None
) -> bool:
    """Post the rendered reply; True when Slack took it. Failures are logged, never raised.
    ``replace_original``: a button's answer takes the place of the message clicked."""
    message = _rendered(reply.result, request_id=request_id)
    if replace_original is not None:
        message["replace_original"] = replace_original
    client = WebhookClient(url=response_url, timeout=10, retry_handlers=_retry_handlers())
    try:
        response = client.send_dict(message)
    except Exception as exc:  # noqa: BLE001 - the user's answer could not be delivered; say so in the log
        log.error("response_url_failed", request_id=request_id, error=type(exc).__name__)
        return False
    if response.status_code != 200:
        log.error("response_url_refused", request_id=request_id, status=response.status_code)
        return False
    return True
