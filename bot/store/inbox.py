"""The SNS inbox (DESIGN §6): every message is stored before SNS hears 200, once per MessageId.

SNS delivers at least once and retries until it gets a 2xx, so the same MessageId can arrive
twice, even at the same moment on two replicas. The unique key decides: the first store wins and
every other one is told it is a duplicate, so an alarm is processed (and posted) once.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bot.sns import SnsMessage
from bot.store.db import Database, rowcount
from bot.store.models import SnsInboxMessage

HTTP, SQS = "http", "sqs"
SOURCES = (HTTP, SQS)
_INSERTS: dict[str, Callable[[type[SnsInboxMessage]], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


_INBOX_LOCK = 0x6D6E7462_6F78  # 'mntbox': the inbox worker's advisory lock


def row_values(
    *, msg: SnsMessage, source: str, received_at: datetime, body: str | None = None
) -> dict[str, Any]:
    """The inbox row for ``msg``; ``body`` is the envelope exactly as received (defaults to a
    re-serialisation of it)."""
    if source not in SOURCES:
        raise ValueError(f"unknown inbox source {source!r}; expected one of {', '.join(SOURCES)}")
    return {
        "message_id": msg.message_id,
        "topic_arn": msg.topic_arn,
        "type": msg.type,
        "subject": msg.subject,
        "body": body if body is not None else json.dumps(msg.raw, ensure_ascii=False),
        "received_at": received_at,
        "sns_timestamp": msg.timestamp,
        "source": source,
    }


class Inbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    def store(self, *, msg: SnsMessage, source: str, received_at: datetime, body: str | None = None) -> bool:
        """True when ``msg`` is new and now committed; False when its MessageId is already stored.

        ``body`` is the envelope exactly as received (defaults to a re-serialisation of it).
        """
        values = row_values(msg=msg, source=source, received_at=received_at, body=body)
        try:
            with self._db.session() as session:
                # ON CONFLICT DO NOTHING: a concurrent duplicate waits for the first insert to commit
                # and then inserts nothing, without failing (and logging) a transaction on the server.
                # RETURNING, not rowcount: the ORM does not pass an INSERT's rowcount on every driver.
                return session.execute(self._insert(values)).first() is not None
        except IntegrityError:
            # A database without ON CONFLICT: the unique key still refuses the second copy. Any other
            # integrity failure is a real error and must not pass for a duplicate.
            if self._exists(msg.message_id):
                return False
            raise

    def _insert(self, values: dict[str, Any]) -> Insert:
        dialect_insert = _INSERTS.get(self._db.dialect)
        if dialect_insert is None:
            return insert(SnsInboxMessage).values(values).returning(SnsInboxMessage.id)
        return (
            dialect_insert(SnsInboxMessage)
            .values(values)
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(SnsInboxMessage.id)
        )

    def _exists(self, message_id: str) -> bool:
        with self._db.session(write=False) as session:
            found = session.scalar(select(SnsInboxMessage.id).where(SnsInboxMessage.message_id == message_id))
        return found is not None

    def pending(self, limit: int = 100) -> list[SnsInboxMessage]:
        """Unprocessed messages, oldest first (arrival order)."""
        with self._db.session(write=False) as session:
            rows = session.scalars(
                select(SnsInboxMessage)
                .where(SnsInboxMessage.processed_at.is_(None))
                .order_by(SnsInboxMessage.id)
                .limit(limit)
            )
            return list(rows)

    def claim_next(self) -> SnsInboxMessage | None:
        """The oldest unprocessed message, for this transaction (call inside ``Database.transaction``).

        One replica at a time works through the inbox (a transaction-scoped advisory lock on
        PostgreSQL; SQLite's write lock does the same), so messages are processed once and in
        arrival order: a replica that finds the lock taken gets None and leaves the work to it."""
        query = (
            select(SnsInboxMessage)
            .where(SnsInboxMessage.processed_at.is_(None))
            .order_by(SnsInboxMessage.id)
            .limit(1)
        )
        with self._db.session() as session:
            if self._db.dialect == "postgresql" and not session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _INBOX_LOCK}
            ):
                return None
            return session.scalars(query).first()

    def mark(self, *, id: int, outcome: str, processed_at: datetime) -> bool:
        """Records how message ``id`` was processed; False when it was already marked (or is unknown)."""
        with self._db.session() as session:
            result = session.execute(
                update(SnsInboxMessage)
                .where(SnsInboxMessage.id == id, SnsInboxMessage.processed_at.is_(None))
                .values(processed_at=processed_at, outcome=outcome)
            )
            return rowcount(result) == 1


class InboxWriter:
    """Group commit for the SNS endpoint: requests hand their rows to one writer thread, which
    stores whatever has queued up in a single INSERT … ON CONFLICT DO NOTHING and one commit, then
    tells each request whether its message was new. Under a burst, one commit carries many
    messages; alone, a message is written at once. Nothing is answered before its commit."""

    def __init__(self, db: Database, *, max_batch: int = 200) -> None:
        self._db = db
        self._max = max_batch
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[bool]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, values: dict[str, Any]) -> Future[bool]:
        """A future that is True once the row is committed as new, False for a duplicate MessageId,
        or raises the database's error (nothing stored)."""
        future: Future[bool] = Future()
        self._queue.put((values, future))
        return future

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[tuple[dict[str, Any], Future[bool]]]) -> None:
        # A request that gave up (client gone, shutdown) has cancelled its future; a running future
        # can no longer be cancelled, and resolving a cancelled one would raise and end this thread,
        # leaving every later request waiting forever. Its row is still stored (SNS will retry it).
        live: list[tuple[dict[str, Any], Future[bool] | None]] = [
            (values, future if future.set_running_or_notify_cancel() else None) for values, future in batch
        ]
        rows: dict[str, dict[str, Any]] = {}
        for values, _future in batch:
            rows.setdefault(values["message_id"], values)  # the same message twice in one batch
        try:
            insert_ = _INSERTS.get(self._db.dialect, postgresql.insert)
            with self._db.session() as session:
                inserted = set(
                    session.scalars(
                        insert_(SnsInboxMessage)
                        .values(list(rows.values()))
                        .on_conflict_do_nothing(index_elements=["message_id"])
                        .returning(SnsInboxMessage.message_id)
                    )
                )
        except Exception as exc:  # noqa: BLE001 - every waiting request answers 503; SNS retries
            for _values, future in live:
                if future is not None:
                    future.set_exception(exc)
            return
        for values, future in live:
            message_id = values["message_id"]
            if future is not None:
                future.set_result(message_id in inserted)
            inserted.discard(message_id)  # a second copy in the same batch is a duplicate
