"""When a message Slack refused is tried again: Retry-After, exponential backoff, and the errors
that are given up on."""

from __future__ import annotations

import math
from typing import Any

_MAX_BACKOFF_SECONDS = 300.0
_PERMANENT_ATTEMPTS = 5  # for errors that Slack will give again whatever we do
# Errors that are about the request, not Slack's health: retrying cannot help for long. (Token
# and scope errors are not among them: they stop every message, and a fixed token must find the
# backlog still queued, so they are retried with backoff and logged as errors.)
_PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "invalid_arguments",
    }
)
_APP_WIDE = frozenset(
    {"invalid_auth", "account_inactive", "token_revoked", "token_expired", "missing_scope", "not_authed"}
)
_MAX_RETRY_AFTER_SECONDS = 3600.0


def _backoff(attempts: int) -> float:
    return min(_MAX_BACKOFF_SECONDS, 2.0 ** min(attempts, 10))


def _retry_after(headers: Any) -> float:
    raw = next(
        (
            value
            for key, value in (headers.items() if hasattr(headers, "items") else ())
            if str(key).lower() == "retry-after" and value
        ),
        None,
    )
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        seconds = float(raw) if raw is not None else 30.0
    except ValueError:
        return 30.0
    return min(_MAX_RETRY_AFTER_SECONDS, max(1.0, seconds)) if math.isfinite(seconds) else 30.0
