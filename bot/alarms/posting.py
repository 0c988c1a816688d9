"""How the alarm path's messages reach Slack: a post that must be taken before its inbox row is
marked (else :class:`PostFailed`), and root edits that may fail without holding anything up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from bot.answers import ChangeResult
from bot.notify import MessageRef

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.alarms")

# Inbox outcomes.
POSTED, THREADED, REFRESHED, STALE = "posted", "threaded", "refreshed", "stale"


class PostFailed(Exception):
    """Slack did not take a message: the inbox row stays pending for a later run."""


def _post(
    core: Core,
    *,
    channel: str,
    result: ChangeResult,
    thread: MessageRef | None = None,
    origin_at: datetime | None = None,
) -> MessageRef:
    try:
        ref = core.notifier.post(channel=channel, result=result, thread=thread, origin_at=origin_at)
    except Exception as exc:  # any failure leaves the inbox row for a retry
        raise PostFailed(type(exc).__name__) from exc
    if ref is None:
        raise PostFailed("the notifier did not post the message")
    return ref


def _safe(core: Core, edit: Callable[[], object]) -> None:
    """A root edit is cosmetic once the reply is out: a failure is logged, and the next event
    refreshes it."""
    try:
        edit()
    except Exception as exc:  # noqa: BLE001
        log.warning("alarm_root_update_failed", error=type(exc).__name__)
