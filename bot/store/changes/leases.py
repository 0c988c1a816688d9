"""Change leases: the "one change at a time" lock on an environment, taken atomically by the database
and expiring so that a crashed holder cannot block an environment for ever."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.errors import PolicyViolation
from bot.rich import Mention, Rich
from bot.store.changes.timestamps import _aware, short_pt
from bot.store.db import Database, rowcount, stored_utc
from bot.store.models import ChangeLease


@dataclass(frozen=True)
class Lease:
    env: str
    holder: str
    action: str
    user: str
    acquired_at: datetime
    expires_at: datetime


class Leases:
    def __init__(self, db: Database) -> None:
        self._db = db

    def acquire(
        self,
        *,
        env: str,
        holder: str,
        action: str,
        user: str,
        now: datetime,
        ttl: timedelta,
        preempt: tuple[str, ...] = (),
    ) -> Lease:
        """Take the environment's lease, or take over an expired one (or one held for an action in
        ``preempt``: an incident rollback need not wait for the deploy it undoes); otherwise
        PolicyViolation.

        Atomic without table locks: the INSERT succeeds for exactly one contender (primary key), and
        taking over an expired lease is an UPDATE conditioned on it still being expired, which
        PostgreSQL re-checks after waiting on the row lock, so only one of several takers wins."""
        now = _aware(now)
        values: dict[str, Any] = {
            "holder": holder,
            "action": action,
            "user": user,
            "acquired_at": now,
            "expires_at": now + ttl,
        }
        for _ in range(3):  # a lease released between our INSERT and UPDATE: go round again
            try:
                with self._db.session() as session:
                    session.execute(insert(ChangeLease).values(env=env, **values))
                return Lease(env=env, **values)
            except IntegrityError:
                pass
            with self._db.session() as session:
                takeable = ChangeLease.expires_at <= now
                if preempt:
                    takeable = takeable | (ChangeLease.action.in_(preempt) & (ChangeLease.holder != holder))
                taken = rowcount(
                    session.execute(
                        update(ChangeLease)
                        .where(ChangeLease.env == env, takeable)
                        .values(**values)
                        .execution_options(synchronize_session=False)
                    )
                )
            if taken == 1:
                return Lease(env=env, **values)
            current = self._read(env)
            if current is not None:
                raise PolicyViolation(_busy_message(current, holder=holder, now=now))
        raise PolicyViolation(
            f"{env} is changing hands too fast to take its change lock; try again in a moment."
        )

    def release(self, *, env: str, holder: str) -> bool:
        """Deletes the lease only if ``holder`` still holds it (not if it expired and was taken over)."""
        with self._db.session() as session:
            return (
                rowcount(
                    session.execute(
                        delete(ChangeLease)
                        .where(ChangeLease.env == env, ChangeLease.holder == holder)
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            )

    def drop_expired(self, *, env: str, now: datetime) -> bool:
        """Deletes ``env``'s lease if it has expired: its holder stopped renewing it, so nothing it
        guarded is still followed (a lease renewed meanwhile is kept)."""
        with self._db.session() as session:
            return (
                rowcount(
                    session.execute(
                        delete(ChangeLease)
                        .where(ChangeLease.env == env, ChangeLease.expires_at <= _aware(now))
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            )

    def renew(self, *, env: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Pushes the expiry to ``now + ttl`` if ``holder`` still holds the lease. A lease that expired
        but was not taken over is still the holder's, so renewing it is fine."""
        now = _aware(now)
        with self._db.session() as session:
            return (
                rowcount(
                    session.execute(
                        update(ChangeLease)
                        .where(ChangeLease.env == env, ChangeLease.holder == holder)
                        .values(expires_at=now + ttl)
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            )

    def get(self, env: str, *, now: datetime) -> Lease | None:
        """The live lease on ``env``; None if there is none or it has expired."""
        lease = self._read(env)
        return lease if lease is not None and lease.expires_at > _aware(now) else None

    def all(self, *, now: datetime) -> dict[str, Lease]:
        """Live leases by environment (for status)."""
        now = _aware(now)
        with self._db.session() as session:
            rows = session.execute(select(ChangeLease).where(ChangeLease.expires_at > now)).scalars()
            return {row.env: _lease(row) for row in rows}

    @contextmanager
    def held(
        self, *, env: str, holder: str, action: str, user: str, now: datetime, ttl: timedelta
    ) -> Iterator[Lease]:
        """``with leases.held(...) as lease:`` — acquired on entry, released on exit, even on errors."""
        lease = self.acquire(env=env, holder=holder, action=action, user=user, now=now, ttl=ttl)
        try:
            yield lease
        finally:
            self.release(env=env, holder=holder)

    def _read(self, env: str) -> Lease | None:
        with self._db.session() as session:
            row = session.get(ChangeLease, env)
            return _lease(row) if row is not None else None


def _busy_message(current: Lease, *, holder: str, now: datetime) -> str:
    if current.holder == holder:
        # Not re-entrant on purpose: a double-clicked button must not run the change twice.
        return (
            f"This change ({holder}) is already running on {current.env} since "
            f"{short_pt(current.acquired_at, now)}; wait for it to finish."
        )
    return Rich(
        f"Another change is in flight on {current.env}: {current.action} by ",
        Mention(current.user),
        f" since {short_pt(current.acquired_at, now)}; try again when it ends "
        f"(the lock expires at {short_pt(current.expires_at, now)}).",
    )


def _lease(row: ChangeLease) -> Lease:
    return Lease(
        env=row.env,
        holder=row.holder,
        action=row.action,
        user=row.user,
        acquired_at=stored_utc(row.acquired_at),
        expires_at=stored_utc(row.expires_at),
    )
