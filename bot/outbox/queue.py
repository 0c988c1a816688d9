"""The outbox table as a queue: a row per post, edit or upload, in order per channel, and the
``outbox:<id>`` reference that names a row until Slack has answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from bot.clock import Clock
from bot.notify import MessageRef
from bot.store.db import Database, rowcount
from bot.store.models import OutboxMessage

PENDING, SENT, DEAD = "pending", "sent", "dead"
_PLACEHOLDER = "outbox:"


def placeholder(row_id: int) -> str:
    return f"{_PLACEHOLDER}{row_id}"


def queued_id(ts: str) -> int | None:
    """The outbox row a reference names, when it names one rather than a Slack ``ts``."""
    if ts.startswith(_PLACEHOLDER) and ts[len(_PLACEHOLDER) :].isdigit():
        return int(ts[len(_PLACEHOLDER) :])
    return None


class Outbox:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def enqueue(
        self,
        *,
        op: str,
        channel: str,
        payload: dict[str, Any],
        parent: MessageRef | None = None,
        target: MessageRef | None = None,
        origin_at: datetime | None = None,
    ) -> int:
        parent_id, target_id = (
            (queued_id(parent.ts) if parent else None),
            (queued_id(target.ts) if target else None),
        )
        if parent is not None and parent_id is None:
            payload = {**payload, "thread_ts": parent.ts}
        if target is not None and target_id is None:
            payload = {**payload, "ts": target.ts}
        now = self._clock.now()
        with self._db.session() as session:
            queued = self._queued_edit(session, channel, target_id, payload) if op == "update" else None
            # Only the latest edit of a message matters: a storm or a rollout's polls replace the
            # queued edit's content instead of queueing one edit per change behind it. Conditional,
            # so an edit a sender claimed meanwhile is left alone and this one is queued after it.
            if (
                queued is not None
                and rowcount(
                    session.execute(
                        update(OutboxMessage)
                        .where(
                            OutboxMessage.id == queued,
                            OutboxMessage.status == PENDING,
                            OutboxMessage.claimed_by.is_(None),
                        )
                        .values(payload=payload)
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            ):
                return int(queued)
            row = OutboxMessage(
                ordering=channel,
                op=op,
                channel=channel,
                payload=payload,
                parent_id=parent_id,
                target_id=target_id,
                status=PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
                origin_at=origin_at,
            )
            session.add(row)
            session.flush()
            return int(row.id)

    @staticmethod
    def _queued_edit(
        session: Any, channel: str, target_id: int | None, payload: dict[str, Any]
    ) -> int | None:
        """A pending, unclaimed edit of the same message, with nothing queued after it in the channel."""
        same_message = (
            OutboxMessage.target_id == target_id
            if target_id is not None
            else OutboxMessage.payload["ts"].as_string() == str(payload.get("ts"))
        )
        last = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.ordering == channel, OutboxMessage.status == PENDING)
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).first()
        if (
            last is not None
            and last.op == "update"
            and last.claimed_by is None
            and session.scalar(select(OutboxMessage.id).where(OutboxMessage.id == last.id, same_message))
        ):
            return int(last.id)
        return None

    def resolve(self, ref: MessageRef) -> MessageRef | None:
        """Slack's own channel id and ts for ``ref``; None while its message is still queued."""
        row_id = queued_id(ref.ts)
        if row_id is None:
            return ref
        with self._db.session(write=False) as session:
            row = session.get(OutboxMessage, row_id)
            if row is None or row.status != SENT or not row.ts:
                return None
            return MessageRef(row.sent_channel or row.channel, row.ts)

    def depth(self) -> int:
        with self._db.session(write=False) as session:
            return int(session.scalar(select(func.count()).where(OutboxMessage.status == PENDING)) or 0)

    def after_commit(self, callback: Any) -> None:
        self._db.after_commit(callback)

    def rows(self, *, status: str | None = None) -> list[OutboxMessage]:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        with self._db.session(write=False) as session:
            return list(session.scalars(query))
