"""``OutboxSender`` sends, oldest first per channel — Slack's rate limit is per channel, and a
channel's order is every thread's order — one message per channel at a time. A 429 waits exactly
``Retry-After``; a 5xx or a network error backs off exponentially and retries for as long as it
takes; an error Slack will repeat forever (``channel_not_found``, ``invalid_blocks``) is retried a
few times and then set aside as ``dead``, logged, so it cannot hold its channel up. A row is
claimed before it is sent, so several replicas can run senders.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import aliased

from bot.clock import Clock
from bot.metrics import Metrics
from bot.notify import MessageRef
from bot.outbox.queue import DEAD, PENDING, SENT
from bot.outbox.retry import _APP_WIDE, _PERMANENT, _PERMANENT_ATTEMPTS, _backoff, _retry_after
from bot.store.db import Database, rowcount, stored_utc
from bot.store.models import OutboxMessage

log = structlog.get_logger("menotime.outbox")

_CLAIM_SECONDS = 60
_BATCH = 25  # rows of one channel claimed together


@dataclass(frozen=True)
class SendOutcome:
    sent: int
    waiting: int  # rows due later (backoff, Retry-After)


class OutboxSender:
    """Sends queued rows through a slack_sdk WebClient (built without retry handlers: the outbox
    does the retrying, so one slow channel never blocks the worker)."""

    def __init__(
        self,
        *,
        db: Database,
        client: Any,
        clock: Clock,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._clock = clock
        self._metrics = metrics
        self._worker = worker_id or uuid.uuid4().hex[:12]

    def send_due(self, *, limit: int = 200) -> SendOutcome:
        """Sends every row due now, channel heads first; returns when nothing more is due."""
        sent = 0
        while sent < limit:
            batch = self._claim_batch()
            if not batch:
                break
            for index, row in enumerate(batch):
                if not self._hold(batch[index:]):
                    break  # another sender took over: the rest are its now
                if not self._send(row):
                    self._release(batch[index + 1 :])  # the rest wait behind the one that failed
                    break
                sent += 1
        waiting = self._waiting()
        if self._metrics is not None:
            self._metrics.outbox_depth.set(self._depth())
        return SendOutcome(sent=sent, waiting=waiting)

    def next_due(self) -> datetime | None:
        """When the next channel head may be sent (a later row waits for its head anyway)."""
        with self._db.session(write=False) as session:
            at = session.scalar(
                select(func.min(OutboxMessage.next_attempt_at)).where(
                    OutboxMessage.status == PENDING, _is_head()
                )
            )
            return stored_utc(at) if at is not None else None

    # ------------------------------------------------------------------------------ internals

    def _claim_batch(self) -> list[OutboxMessage]:
        """The head of some channel whose turn it is and the rows queued right behind it (up to
        ``_BATCH``), claimed for this worker in one transaction: a burst into one channel costs
        one claim, not one per message."""
        now = self._clock.now()
        claimable = (OutboxMessage.claimed_until.is_(None)) | (OutboxMessage.claimed_until < now)
        with self._db.session() as session:
            head = session.execute(
                select(OutboxMessage.id, OutboxMessage.ordering)
                .where(
                    OutboxMessage.status == PENDING,
                    OutboxMessage.next_attempt_at <= now,
                    claimable,
                    _is_head(),
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(1)
            ).first()
            if head is None:
                return []
            queue = session.execute(
                select(OutboxMessage.id, OutboxMessage.next_attempt_at, OutboxMessage.claimed_until)
                .where(
                    OutboxMessage.ordering == head.ordering,
                    OutboxMessage.status == PENDING,
                    OutboxMessage.id >= head.id,
                )
                .order_by(OutboxMessage.id)
                .limit(_BATCH)
            ).all()
            ids = []
            for row in queue:  # a contiguous run: a row not due yet keeps everything behind it waiting
                if stored_utc(row.next_attempt_at) > now or (
                    row.claimed_until and stored_utc(row.claimed_until) >= now
                ):
                    break
                ids.append(row.id)
            claimed = rowcount(
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids), OutboxMessage.status == PENDING, claimable)
                    .values(claimed_by=self._worker, claimed_until=now + timedelta(seconds=_CLAIM_SECONDS))
                    .execution_options(synchronize_session=False)
                )
            )
            if claimed != len(ids):
                session.rollback()
                return []  # another sender got there first; the loop looks again
            return list(
                session.scalars(
                    select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
                )
            )

    def _hold(self, rows: list[OutboxMessage]) -> bool:
        """Extends the claim on what is left of a batch before its claim runs short: a batch sent
        to a slow Slack takes longer than one claim, and an expired claim lets another replica send
        the same rows. False when the claim was already lost (the rows are left to the other)."""
        now = self._clock.now()
        if rows[0].claimed_until is not None and stored_utc(rows[0].claimed_until) - now > timedelta(
            seconds=_CLAIM_SECONDS / 2
        ):
            return True
        until = now + timedelta(seconds=_CLAIM_SECONDS)
        with self._db.session() as session:
            held = rowcount(
                session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id.in_([r.id for r in rows]),
                        OutboxMessage.status == PENDING,
                        OutboxMessage.claimed_by == self._worker,
                    )
                    .values(claimed_until=until)
                    .execution_options(synchronize_session=False)
                )
            )
            if held != len(rows):
                session.rollback()
        if held != len(rows):
            self._release(rows)
            return False
        for row in rows:
            row.claimed_until = until
        return True

    def _release(self, rows: list[OutboxMessage]) -> None:
        if not rows:
            return
        with self._db.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_([r.id for r in rows]), OutboxMessage.claimed_by == self._worker)
                .values(claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    def _send(self, row: OutboxMessage) -> bool:
        try:
            args = self._arguments(row)
            answer = self._call(row.op, args)
        except SlackApiError as exc:
            self._failed(row, exc)
            return False
        except _Unresolvable as exc:
            self._finish(row, status=DEAD, error=str(exc))
            log.error("outbox_dead", id=row.id, channel=row.channel, op=row.op, error=str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - network trouble: back off and try again
            self._retry_later(row, error=type(exc).__name__, delay=_backoff(row.attempts))
            return False
        channel = str(answer.get("channel") or args["channel"])  # Slack answers the id; else where it went
        self._finish(row, status=SENT, ts=str(answer.get("ts") or args.get("ts") or ""), sent_channel=channel)
        if self._metrics is not None and row.origin_at is not None and row.op == "post":
            self._metrics.alarm_latency.observe(
                max(0.0, (self._clock.now() - stored_utc(row.origin_at)).total_seconds())
            )
        return True

    def _arguments(self, row: OutboxMessage) -> dict[str, Any]:
        payload = dict(row.payload)
        payload.pop("console", None)
        channel = row.channel
        if row.parent_id is not None:
            parent = self._sent_ref(row.parent_id)
            payload["thread_ts"] = parent.ts
            channel = parent.channel
        if row.target_id is not None:
            target = self._sent_ref(row.target_id)
            payload["ts"] = target.ts
            channel = target.channel
        payload["channel"] = channel
        return payload

    def _sent_ref(self, row_id: int) -> MessageRef:
        with self._db.session(write=False) as session:
            row = session.get(OutboxMessage, row_id)
        if row is None or row.status == DEAD or (row.status == SENT and not row.ts):
            raise _Unresolvable(f"the message it refers to (outbox {row_id}) was never sent")
        if row.status != SENT:
            raise _NotYet(row_id)
        return MessageRef(row.sent_channel or row.channel, str(row.ts))

    def _call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        # The client is Slack's WebClient (or a test's stand-in); a JSON answer's data is a dict.
        if op == "post":
            posted: dict[str, Any] = self._client.chat_postMessage(**args).data
            return posted
        if op == "update":
            updated: dict[str, Any] = self._client.chat_update(**args).data
            return updated
        if op == "upload":
            import base64

            answer = self._client.files_upload_v2(
                channel=args["channel"],
                thread_ts=args.get("ts"),
                filename=args["filename"],
                title=args["title"],
                content=base64.b64decode(args["content_b64"]),
            )
            return {"channel": args["channel"], "ts": args.get("ts"), "ok": answer.get("ok")}
        raise _Unresolvable(f"unknown outbox operation {op!r}")

    def _failed(self, row: OutboxMessage, exc: SlackApiError) -> None:
        response = exc.response
        status = getattr(response, "status_code", None)
        error = str((response.get("error") if hasattr(response, "get") else None) or f"http_{status}")
        if status == 429:
            retry_after = _retry_after(getattr(response, "headers", {}) or {})
            self._retry_later(row, error="ratelimited", delay=retry_after, count=False)
        elif error in _APP_WIDE:
            log.error(
                "slack_token_refused",
                error=error,
                hint="check SLACK_BOT_TOKEN and the app's scopes; queued messages are kept and retried",
            )
            self._retry_later(row, error=error, delay=_backoff(row.attempts))
        elif error in _PERMANENT and row.attempts + 1 >= _PERMANENT_ATTEMPTS:
            self._finish(row, status=DEAD, error=error)
            log.error("outbox_dead", id=row.id, channel=row.channel, op=row.op, error=error)
        else:
            self._retry_later(row, error=error, delay=_backoff(row.attempts))

    def _retry_later(self, row: OutboxMessage, *, error: str, delay: float, count: bool = True) -> None:
        now = self._clock.now()
        with self._db.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.claimed_by == self._worker)
                .values(
                    attempts=OutboxMessage.attempts + (1 if count else 0),
                    last_error=error[:200],
                    next_attempt_at=now + timedelta(seconds=delay),
                    claimed_by=None,
                    claimed_until=None,
                )
                .execution_options(synchronize_session=False)
            )
        log.warning(
            "outbox_retry", id=row.id, channel=row.channel, op=row.op, error=error, retry_in=round(delay, 1)
        )

    def _finish(
        self,
        row: OutboxMessage,
        *,
        status: str,
        ts: str | None = None,
        sent_channel: str | None = None,
        error: str | None = None,
    ) -> None:
        with self._db.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id)
                .values(
                    status=status,
                    ts=ts,
                    sent_channel=sent_channel,
                    sent_at=self._clock.now(),
                    last_error=error,
                    claimed_by=None,
                    claimed_until=None,
                    attempts=OutboxMessage.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )

    def _waiting(self) -> int:
        with self._db.session(write=False) as session:
            return int(
                session.scalar(
                    select(func.count()).where(
                        OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at > self._clock.now()
                    )
                )
                or 0
            )

    def _depth(self) -> int:
        with self._db.session(write=False) as session:
            return int(session.scalar(select(func.count()).where(OutboxMessage.status == PENDING)) or 0)


def _is_head() -> Any:
    """No older pending row in the same ordering: this row's turn."""
    earlier = aliased(OutboxMessage)
    return (
        ~select(earlier.id)
        .where(
            and_(
                earlier.ordering == OutboxMessage.ordering,
                earlier.status == PENDING,
                earlier.id < OutboxMessage.id,
            )
        )
        .exists()
    )


class _Unresolvable(Exception):
    """The row can never be sent as it stands."""


class _NotYet(Exception):
    """The row's parent has not been sent (another channel's queue): wait."""
