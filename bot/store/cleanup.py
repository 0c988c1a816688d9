"""Dev-cleanup marks: what one run announced, so that the next run may delete it if it still matches."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_

from bot.store.db import Database, rowcount, stored_utc
from bot.store.models import CleanupMark

_CHUNK = 500  # keys per DELETE … WHERE (kind, resource_id) IN (…)


@dataclass(frozen=True)
class Mark:
    kind: str
    resource_id: str
    marked_at: datetime
    run_id: int | None
    detail: dict[str, Any] | None

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.resource_id


@dataclass(frozen=True)
class NewMark:
    kind: str
    resource_id: str
    detail: dict[str, Any] | None = None


class CleanupMarks:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> dict[tuple[str, str], Mark]:
        with self._db.session(write=False) as session:
            rows = session.scalars(select(CleanupMark)).all()
            return {
                (r.kind, r.resource_id): Mark(
                    kind=r.kind,
                    resource_id=r.resource_id,
                    marked_at=stored_utc(r.marked_at),
                    run_id=r.run_id,
                    detail=r.detail,
                )
                for r in rows
            }

    def add(self, *, marks: Iterable[NewMark], at: datetime, run_id: int | None) -> int:
        """Mark resources not marked yet (an existing mark keeps its original time)."""
        wanted = {(m.kind, m.resource_id): m for m in marks}
        if not wanted:
            return 0
        with self._db.session() as session:
            existing = {(r.kind, r.resource_id) for r in session.scalars(select(CleanupMark)).all()}
            fresh = [m for key, m in wanted.items() if key not in existing]
            session.add_all(
                CleanupMark(
                    kind=m.kind, resource_id=m.resource_id, marked_at=at, run_id=run_id, detail=m.detail
                )
                for m in fresh
            )
            return len(fresh)

    def drop(self, *, keys: Iterable[tuple[str, str]]) -> int:
        keys = list(dict.fromkeys(keys))
        dropped = 0
        with self._db.session() as session:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                result = session.execute(
                    delete(CleanupMark).where(tuple_(CleanupMark.kind, CleanupMark.resource_id).in_(chunk))
                )
                dropped += rowcount(result) or 0
        return dropped
