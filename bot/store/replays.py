"""Signed Slack requests already received (DESIGN §9: a replayed request has no side effect).

A signature is valid for five minutes either side of its timestamp, so a captured request could
be sent again within that window. Each is remembered by the hash of its timestamp and signature
(an Events API event by its ``event_id``: Slack retries an event it got no 2xx for, signed anew,
and a retry of one never run must run) under a unique key: the first
insert wins, on every replica at once, and every later copy is told it is a replay and how many
came before it (so the first replay is audited and a flood of them does not fill the trail).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Insert, delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from bot.store.db import Database, rowcount
from bot.store.models import SlackRequestSeen

SIGNATURE_WINDOW = timedelta(minutes=5)  # Slack's: a timestamp further from now fails verification
_CLOCK_SKEW = timedelta(minutes=1)  # between replicas' clocks, kept a little longer
_INSERTS: dict[str, Callable[[type[SlackRequestSeen]], postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


class SlackReplays:
    def __init__(self, db: Database) -> None:
        self._db = db

    def seen_before(self, *, timestamp: int, signature: str, at: datetime) -> int:
        """Records a verified request; how many times it was received before (0: the first time)."""
        return self._seen(
            hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest(), timestamp=timestamp, at=at
        )

    def event_seen_before(self, *, event_id: str, timestamp: int, at: datetime) -> int:
        """Records an Events API event by its ``event_id`` (the same in each of Slack's retries,
        whatever their signatures), kept as long as a request signed at ``timestamp``; how many
        times it was received before."""
        return self._seen(
            hashlib.sha256(f"event:{event_id}".encode()).hexdigest(), timestamp=timestamp, at=at
        )

    def _seen(self, digest: str, *, timestamp: int, at: datetime) -> int:
        values = {
            "signature_hash": digest,
            "signed_at": datetime.fromtimestamp(timestamp, UTC),
            "seen_at": at,
            "replays": 0,
        }
        try:
            with self._db.session() as session:
                # ON CONFLICT DO NOTHING: a concurrent copy waits for the first insert's commit, then
                # inserts nothing; RETURNING says which of the two this was.
                if session.execute(self._insert(values)).first() is not None:
                    return 0
        except IntegrityError:
            pass  # a database without ON CONFLICT: the primary key refused the copy
        with self._db.session() as session:
            counted = session.execute(
                update(SlackRequestSeen)
                .where(SlackRequestSeen.signature_hash == digest)
                .values(replays=SlackRequestSeen.replays + 1)
                .returning(SlackRequestSeen.replays)
            ).scalar_one_or_none()
        return counted or 1  # pruned in between: still a copy of something seen

    def prune(self, *, now: datetime) -> int:
        """Forgets the requests whose signature can no longer pass verification; how many."""
        cutoff = now - SIGNATURE_WINDOW - _CLOCK_SKEW
        with self._db.session() as session:
            return rowcount(
                session.execute(delete(SlackRequestSeen).where(SlackRequestSeen.signed_at < cutoff))
            )

    def _insert(self, values: dict[str, Any]) -> Insert:
        dialect_insert = _INSERTS.get(self._db.dialect)
        if dialect_insert is None:
            return insert(SlackRequestSeen).values(values).returning(SlackRequestSeen.signature_hash)
        return (
            dialect_insert(SlackRequestSeen)
            .values(values)
            .on_conflict_do_nothing()
            .returning(SlackRequestSeen.signature_hash)
        )
