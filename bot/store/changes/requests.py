"""Change requests: a change waiting for a confirmation click or a second person's approval, bound to
a hash of its exact parameters and decided by one conditional UPDATE."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.errors import NotFound, PolicyViolation
from bot.rich import Mention, Rich
from bot.store.changes.timestamps import _aware, short_pt
from bot.store.db import Database, rowcount, stored_utc
from bot.store.models import ChangeRequest

RequestKind = Literal["confirmation", "approval"]
RequestStatus = Literal["pending", "approved", "denied", "expired", "executed", "failed", "cancelled"]
Decision = Literal["failed", "approved", "denied", "cancelled", "executed"]

REQUEST_PREFIX = "REQ-"
# No 0/O, 1/I/L: people read these ids off a screen and type them back.
_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_ID_LENGTH = 6  # 31**6 ≈ 8.9e8 ids; a collision only costs a retry


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
        by = (" by ", Mention(current.decided_by)) if current.decided_by else ()
        return Rich(f"Request {rid} was already {current.status}", *by, ".")


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
