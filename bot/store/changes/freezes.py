"""Freezes (`lock <env> <reason>`): a human decision that an environment must not change, kept until
someone unlocks it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from bot.errors import NotFound, PolicyViolation
from bot.rich import Mention, Rich
from bot.store.changes.timestamps import _aware, short_pt
from bot.store.db import Database, stored_utc
from bot.store.models import EnvLock


@dataclass(frozen=True)
class Freeze:
    env: str
    reason: str
    locked_by: str
    locked_at: datetime


class Freezes:
    def __init__(self, db: Database) -> None:
        self._db = db

    def freeze(self, *, env: str, reason: str, by: str, at: datetime) -> Freeze:
        at = _aware(at)
        for _ in range(3):  # an unlock between our INSERT and our read: go round again
            try:
                with self._db.session() as session:
                    session.execute(
                        insert(EnvLock).values(env=env, reason=reason, locked_by=by, locked_at=at)
                    )
                return Freeze(env=env, reason=reason, locked_by=by, locked_at=at)
            except IntegrityError:
                existing = self.get(env)
            if existing is not None:
                raise PolicyViolation(
                    Rich(
                        f"{env} is already locked by ",
                        Mention(existing.locked_by),
                        f" since {short_pt(existing.locked_at, at)}: {existing.reason}",
                    )
                )
        raise PolicyViolation(f"{env} is being locked and unlocked too fast; try again in a moment.")

    def unfreeze(self, *, env: str) -> Freeze:
        """Removes the freeze and returns it (who froze it and why, for the reply and the audit)."""
        with self._db.session() as session:
            row = session.execute(
                select(EnvLock).where(EnvLock.env == env).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise NotFound(f"{env} is not locked")
            freeze = _freeze(row)
            session.delete(row)
        return freeze

    def get(self, env: str) -> Freeze | None:
        with self._db.session() as session:
            row = session.get(EnvLock, env)
            return _freeze(row) if row is not None else None

    def all(self) -> dict[str, Freeze]:
        with self._db.session() as session:
            return {
                row.env: _freeze(row)
                for row in session.execute(select(EnvLock).order_by(EnvLock.env)).scalars()
            }


def _freeze(row: EnvLock) -> Freeze:
    return Freeze(
        env=row.env, reason=row.reason, locked_by=row.locked_by, locked_at=stored_utc(row.locked_at)
    )
