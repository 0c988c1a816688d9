"""A signed Slack request runs once (DESIGN §9), checked where its work starts, not before its ack.

``/slack/events`` verifies the signature and puts the request's identity in Bolt's context
(:data:`SIGNED`); each listener's work asks :meth:`RunOnce.first_time` before doing anything. The
check is a database write, and on the ack's path it waited behind the answers' own writes (SQLite's
single writer): p99 ack 1.5 s under load instead of 0.35 s. Here the ack stays free of the database
and a replay is still answered the way Slack expects, and not run. The first copy of a request is
audited as a replay; later copies are counted, not audited, so a captured request resent for
five minutes cannot flood the trail.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot.core import Core
from bot.dispatch import new_request_id
from bot.store.replays import SlackReplays

log = structlog.get_logger("menotime.slack")

SIGNED = "menotime_signed"  # context key: [X-Slack-Request-Timestamp, X-Slack-Signature, is Slack's retry]


def event_id(body: dict[str, Any]) -> str | None:
    """The Events API's id of an event, the same in each of Slack's retries of it."""
    value = body.get("event_id")
    return value if body.get("type") == "event_callback" and isinstance(value, str) and value else None


class RunOnce:
    def __init__(self, core: Core) -> None:
        self._core = core
        self._replays = SlackReplays(core.db)

    def first_time(self, body: dict[str, Any], context: dict[str, Any]) -> bool:
        """Whether this request's work should run: False for a copy of one already received (or
        when that cannot be known because the database stays unreachable: nothing runs twice)."""
        signed = context.get(SIGNED)
        if not signed:
            return True  # Socket Mode: no signature; Slack delivers each envelope until it is acked once
        timestamp, signature, retry = str(signed[0]), str(signed[1]), bool(signed[2])
        core = self._core
        try:
            copies = core.db.retrying(
                lambda: self._seen_before(body, int(timestamp), signature), what="slack replay check"
            )
        except SQLAlchemyError as exc:
            log.error("slack_replay_check_failed", error=type(exc).__name__)
            return False
        if not copies:
            return True
        log.warning("slack_replay_not_run", retry=retry, slack_timestamp=timestamp, copies=copies)
        if copies == 1:
            self._audit(body, context, timestamp=timestamp, retry=retry)
        return False

    def _seen_before(self, body: dict[str, Any], timestamp: int, signature: str) -> int:
        # An event is known by its event_id: Slack retries one it got no 2xx for, signed anew.
        # A command or a click is never retried by Slack: known by its signature.
        at = self._core.clock.now()
        event = event_id(body)
        if event is not None:
            return self._replays.event_seen_before(event_id=event, timestamp=timestamp, at=at)
        return self._replays.seen_before(timestamp=timestamp, signature=signature, at=at)

    def _audit(self, body: dict[str, Any], context: dict[str, Any], *, timestamp: str, retry: bool) -> None:
        core = self._core
        event = body.get("event")
        kind = (
            body.get("command")
            or (event.get("type") if isinstance(event, dict) else None)
            or body.get("type")
        )
        what = "Slack's retry of a request" if retry else "a signed Slack request"
        try:
            core.audit.append(
                at=core.clock.now(),
                actor=str(context.get("user_id") or "slack"),
                source="slack",
                verb="replay",
                env=None,
                args={"kind": str(kind or "unknown")[:64], "slack_timestamp": timestamp},
                rule="slack-retry" if retry else "slack-replay",
                outcome="replay",
                detail=f"{what} received before; answered, not run again",
                request_id=context.get("request_id") or new_request_id(),
            )
        except SQLAlchemyError as exc:
            log.error("slack_replay_audit_failed", error=type(exc).__name__)
