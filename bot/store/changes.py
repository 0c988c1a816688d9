"""Freezes, change leases and change requests: who may change an environment, and when.

- A *freeze* (`lock <env> <reason>`) is a human decision: it stays until someone unlocks.
- A *lease* is the "one change at a time" lock. It is taken atomically by the database (the primary
  key on ``env``), so it holds across processes and replicas sharing PostgreSQL, and it expires so
  that a crashed holder cannot block an environment for ever.
- A *request* is a change waiting for a confirmation click or a second person's approval, bound to a
  hash of its exact parameters. Deciding it is one conditional UPDATE, so two clicks (or two
  approvers) racing each other produce exactly one decision.

Datetimes go in and come out timezone-aware in UTC; results are frozen dataclasses, never ORM rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.errors import NotFound, PolicyViolation
from bot.store.db import Database, rowcount, stored_utc
from bot.store.models import ChangeLease, ChangeRequest, EnvLock

PACIFIC = ZoneInfo("America/Los_Angeles")

RequestKind = Literal["confirmation", "approval"]
RequestStatus = Literal["pending", "approved", "denied", "expired", "executed", "failed", "cancelled"]
Decision = Literal["failed", "approved", "denied", "cancelled", "executed"]

REQUEST_PREFIX = "REQ-"
# No 0/O, 1/I/L: people read these ids off a screen and type them back.
_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_ID_LENGTH = 6  # 31**6 ≈ 8.9e8 ids; a collision only costs a retry


@dataclass(frozen=True)
class Freeze:
    env: str
    reason: str
    locked_by: str
    locked_at: datetime


@dataclass(frozen=True)
class Lease:
    env: str
    holder: str
    action: str
    user: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class ChangeRequestView:
    id: str
    kind: str
    env: str
    action: str
    params: dict[str, Any]
    params_hash: str
    requested_by: str
    reason: str | None
    created_at: datetime
    expires_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    channel: str | None
    message_ts: str | None

    def is_expired(self, now: datetime) -> bool:
        return self.status == "expired" or (self.status == "pending" and _aware(now) >= self.expires_at)

    def matches(self, params: dict[str, Any]) -> bool:
        """Whether ``params`` are exactly the parameters this request was made (and approved) for."""
        return Requests.params_hash(params) == self.params_hash


# -- time helpers ------------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    # Inputs must say which time they mean: a naive datetime here is a bug (utcnow(), a parsed string),
    # and on SQLite it would be compared as text against UTC values.
    if value.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return value.astimezone(UTC)


def short_pt(value: datetime, now: datetime | None = None) -> str:
    """``10:02 PT`` when on the same Pacific day as ``now``, else ``Tue Nov 24 10:02 PT``."""
    local = stored_utc(value).astimezone(PACIFIC)
    if now is not None and stored_utc(now).astimezone(PACIFIC).date() == local.date():
        return f"{local:%H:%M} PT"
    return f"{local:%a %b} {local.day} {local:%H:%M} PT"


# -- freezes -----------------------------------------------------------------------------------------


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
                    f"{env} is already locked by <@{existing.locked_by}> since "
                    f"{short_pt(existing.locked_at, at)}: {existing.reason}"
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


# -- leases ------------------------------------------------------------------------------------------


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
    return (
        f"Another change is in flight on {current.env}: {current.action} by <@{current.user}> since "
        f"{short_pt(current.acquired_at, now)}; try again when it ends "
        f"(the lock expires at {short_pt(current.expires_at, now)})."
    )


# -- requests ----------------------------------------------------------------------------------------


class Requests:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def params_hash(params: dict[str, Any]) -> str:
        """SHA-256 of the canonical JSON of ``params``: equal dicts hash equal whatever their key order."""
        canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @staticmethod
    def normalize_id(raw: str) -> str:
        """``req-7k3m9q``, ``7K3M9Q`` and ``REQ-7K3M9Q`` all name the same request."""
        value = raw.strip().upper()
        return value if value.startswith(REQUEST_PREFIX) else REQUEST_PREFIX + value

    def create(
        self,
        *,
        kind: RequestKind,
        env: str,
        action: str,
        params: dict[str, Any],
        requested_by: str,
        reason: str | None,
        now: datetime,
        ttl: timedelta,
    ) -> ChangeRequestView:
        now = _aware(now)
        params = json.loads(json.dumps(params, default=str))  # exactly what the JSON column will hold
        for _ in range(5):
            request_id = REQUEST_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
            row = ChangeRequest(
                id=request_id,
                kind=kind,
                env=env,
                action=action,
                params=params,
                params_hash=self.params_hash(params),
                requested_by=requested_by,
                reason=reason,
                created_at=now,
                expires_at=now + ttl,
                status="pending",
            )
            try:
                with self._db.session() as session:
                    session.add(row)
                    session.flush()
                    return _view(row)
            except IntegrityError:  # the id was taken: draw another
                continue
        raise RuntimeError("could not allocate a unique change request id")

    def get(self, id: str) -> ChangeRequestView:
        view = self._read(self.normalize_id(id))
        if view is None:
            raise NotFound(f"There is no request {id.strip()}.")
        return view

    def decide(
        self, *, id: str, status: Decision, by: str, now: datetime, expect: str = "pending"
    ) -> ChangeRequestView:
        """Moves the request from ``expect`` to ``status`` in one conditional UPDATE: of several people
        (or clicks) deciding at once, exactly one wins and the others get a precise refusal.

        A pending request past its expiry cannot be decided. ``decided_by``/``decided_at`` record the
        decision out of ``pending`` (the approver, the denier, the confirmer); moving an approved
        request to ``executed`` keeps the approver there (the audit trail says who executed it)."""
        now = _aware(now)
        request_id = self.normalize_id(id)
        conditions = [ChangeRequest.id == request_id, ChangeRequest.status == expect]
        if expect == "pending" or status not in ("executed", "failed"):
            conditions.append(ChangeRequest.expires_at > now)
        values: dict[str, Any] = {"status": status}
        if expect == "pending":
            values.update(decided_by=by, decided_at=now)
        with self._db.session() as session:
            won = (
                rowcount(
                    session.execute(
                        update(ChangeRequest)
                        .where(*conditions)
                        .values(**values)
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            )
            # Read back in the same transaction: what we decided, not what someone did next.
            row = session.get(ChangeRequest, request_id, populate_existing=True)
            current = _view(row) if row is not None else None
        if current is None:
            raise NotFound(f"There is no request {id.strip()}.")
        if won:
            return current
        raise PolicyViolation(self._refusal(current, expect=expect, now=now))

    def expire_due(self, *, now: datetime) -> int:
        """Marks pending requests past their expiry as expired; returns how many."""
        now = _aware(now)
        with self._db.session() as session:
            return rowcount(
                session.execute(
                    update(ChangeRequest)
                    .where(ChangeRequest.status == "pending", ChangeRequest.expires_at <= now)
                    .values(status="expired")
                    .execution_options(synchronize_session=False)
                )
            )

    def overdue(self, *, now: datetime) -> list[ChangeRequestView]:
        """Pending requests past their expiry, oldest first."""
        with self._db.session(write=False) as session:
            rows = session.execute(
                select(ChangeRequest)
                .where(ChangeRequest.status == "pending", ChangeRequest.expires_at <= _aware(now))
                .order_by(ChangeRequest.expires_at, ChangeRequest.id)
            ).scalars()
            return [_view(row) for row in rows]

    def expire(self, *, id: str) -> bool:
        """Marks ``id`` expired if it is still pending; False when someone decided it first."""
        with self._db.session() as session:
            return (
                rowcount(
                    session.execute(
                        update(ChangeRequest)
                        .where(ChangeRequest.id == id, ChangeRequest.status == "pending")
                        .values(status="expired")
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            )

    def set_message(self, *, id: str, channel: str, ts: str) -> None:
        """Where the request's interactive message was posted, so a decision can update it."""
        with self._db.session() as session:
            updated = rowcount(
                session.execute(
                    update(ChangeRequest)
                    .where(ChangeRequest.id == self.normalize_id(id))
                    .values(channel=channel, message_ts=ts)
                    .execution_options(synchronize_session=False)
                )
            )
        if updated != 1:
            raise NotFound(f"There is no request {id.strip()}.")

    def pending(self, env: str | None = None, *, now: datetime | None = None) -> list[ChangeRequestView]:
        """Pending requests, oldest first; with ``now``, those already past expiry are left out."""
        query = (
            select(ChangeRequest)
            .where(ChangeRequest.status == "pending")
            .order_by(ChangeRequest.created_at, ChangeRequest.id)
        )
        if env is not None:
            query = query.where(ChangeRequest.env == env)
        if now is not None:
            query = query.where(ChangeRequest.expires_at > _aware(now))
        with self._db.session() as session:
            return [_view(row) for row in session.execute(query).scalars()]

    def _read(self, request_id: str) -> ChangeRequestView | None:
        with self._db.session() as session:
            row = session.get(ChangeRequest, request_id)
            return _view(row) if row is not None else None

    def _refusal(self, current: ChangeRequestView, *, expect: str, now: datetime) -> str:
        rid = current.id
        # Still in the expected state, yet not updated: the only condition left is the expiry.
        if current.status == "expired" or current.status == expect:
            if current.status == "pending":
                # Record what we found, so lists and buttons stop offering it.
                with self._db.session() as session:
                    session.execute(
                        update(ChangeRequest)
                        .where(
                            ChangeRequest.id == rid,
                            ChangeRequest.status == "pending",
                            ChangeRequest.expires_at <= now,
                        )
                        .values(status="expired")
                        .execution_options(synchronize_session=False)
                    )
            return f"Request {rid} expired at {short_pt(current.expires_at, now)}; ask again."
        if current.status == "pending":
            return f"Request {rid} is still pending; it has not been {expect} yet."
        by = f" by <@{current.decided_by}>" if current.decided_by else ""
        return f"Request {rid} was already {current.status}{by}."


def _freeze(row: EnvLock) -> Freeze:
    return Freeze(
        env=row.env, reason=row.reason, locked_by=row.locked_by, locked_at=stored_utc(row.locked_at)
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


def _view(row: ChangeRequest) -> ChangeRequestView:
    return ChangeRequestView(
        id=row.id,
        kind=row.kind,
        env=row.env,
        action=row.action,
        params=dict(row.params or {}),
        params_hash=row.params_hash,
        requested_by=row.requested_by,
        reason=row.reason,
        created_at=stored_utc(row.created_at),
        expires_at=stored_utc(row.expires_at),
        status=row.status,
        decided_by=row.decided_by,
        decided_at=stored_utc(row.decided_at) if row.decided_at else None,
        channel=row.channel,
        message_ts=row.message_ts,
    )
