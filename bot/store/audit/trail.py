"""The trail itself (:class:`AuditLog`): appends under the head's lock, the keying marker, reading,
verifying and exporting; :mod:`bot.store.audit` explains how a trail becomes keyed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bot.store.audit.chain import (
    EMPTY,
    GENESIS,
    AuditEntry,
    AuditKeyError,
    AuditKeyingRefused,
    ChainHead,
    VerifyReport,
    _digest,
    _entry,
    _entry_digest,
    unkeyed_trail_error,
)
from bot.store.db import Database, stored_utc
from bot.store.models import AuditEvent, AuditHead

_HEAD_ID = 1
MARKER_VERB = "audit-chain-keyed"
MARKER_SOURCE = "audit"
BOT_ACTOR = "menotime-bot"
ACTOR_LENGTH = 64  # audit_events.actor
EXPORT_FIELDS = (
    "seq",
    "at",
    "actor",
    "source",
    "verb",
    "env",
    "args",
    "rule",
    "outcome",
    "detail",
    "request_id",
    "prev_hash",
    "hash",
)


class AuditLog:
    def __init__(self, db: Database, *, key: bytes | None = None) -> None:
        self._db = db
        self._key = key
        self._marker: int | None = None  # found once: the marker never moves
        self._no_marker_to = 0  # events 1..this were looked at and hold no marker

    @property
    def keyed(self) -> bool:
        """Whether this process holds the chain's key (its appends are HMAC-signed)."""
        return self._key is not None

    def append(
        self,
        *,
        at: datetime,
        actor: str,
        source: str,
        verb: str,
        env: str | None,
        args: dict[str, Any],
        rule: str,
        outcome: str,
        detail: str | None = None,
        request_id: str | None = None,
    ) -> AuditEntry:
        args = json.loads(json.dumps(args, default=str))  # exactly what the JSON column will hold
        at, actor = stored_utc(at), actor[:ACTOR_LENGTH]
        with self._db.session() as session:
            head = _lock_head(session)
            marker = self._keying(session, head, at)
            row = self._add(
                session,
                head,
                self._key if marker is not None else None,
                at=at,
                actor=actor,
                source=source,
                verb=verb,
                env=env,
                args=args,
                rule=rule,
                outcome=outcome,
                detail=detail,
                request_id=request_id,
            )
            return _entry(row)

    def ensure_keyed(self, *, at: datetime) -> int | None:
        """With a key, the keying marker's seq; an empty trail gets its marker now. A trail of unkeyed
        events is never keyed here (AuditKeyError): only `audit key`, by an operator, keys it."""
        if self._key is None:
            return None
        with self._db.session() as session:
            return self._keying(session, _lock_head(session), stored_utc(at))

    def key_trail(self, *, at: datetime, expect: ChainHead, actor: str) -> AuditEntry:
        """`audit key`: writes the keying marker over a trail of unkeyed events whose head is still
        ``expect`` (what the operator verified and recorded); AuditKeyingRefused otherwise."""
        if self._key is None:
            raise AuditKeyError(
                "AUDIT_KEY is not set: set it (the environment or Secrets Manager) to key the trail."
            )
        with self._db.session() as session:
            head = _lock_head(session)
            marker = self._marker_seq(session, head_seq=head.seq)
            if marker is not None:
                raise AuditKeyingRefused(f"the audit trail is already keyed (since event {marker}).")
            if (head.seq, head.hash) != (expect.seq, expect.hash):
                raise AuditKeyingRefused(
                    f"the trail's head moved from event {expect.seq} to {head.seq} since it was "
                    "verified; run `menotime-bot audit key` again."
                )
            return _entry(self._write_marker(session, head, stored_utc(at), actor=actor))

    def check_key(self) -> None:
        """Raises AuditKeyError when this process cannot extend the trail: it is keyed and no key was
        given, or the key does not sign its keying marker (not the key it was keyed with)."""
        with self._db.session(write=False) as session:
            marker = self._marker_seq(session, cache=False)
            row = session.get(AuditEvent, marker) if marker is not None else None
            event = _entry(row) if row is not None else None
        if event is None:
            return
        if self._key is None:
            raise AuditKeyError(
                f"The audit trail is keyed since event {marker} but AUDIT_KEY is not set. Set it "
                "(the environment or Secrets Manager)."
            )
        if _entry_digest(event, self._key) != event.hash:
            raise AuditKeyError(
                f"AUDIT_KEY is not the key the audit trail was keyed with (event {marker} does "
                "not verify under it): set the original key."
            )

    def head(self) -> ChainHead:
        with self._db.session(write=False) as session:
            head = session.get(AuditHead, _HEAD_ID)
            if head is None or not head.seq:
                return EMPTY
            row = session.get(AuditEvent, head.seq)
            return ChainHead(seq=head.seq, hash=head.hash, at=stored_utc(row.at) if row is not None else None)

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of event ``seq``; None if there is no such event."""
        with self._db.session(write=False) as session:
            return session.execute(select(AuditEvent.hash).where(AuditEvent.seq == seq)).scalar_one_or_none()

    def recent(
        self, *, envs: Sequence[str] | None = None, limit: int = 20, envless_actor: str | None = None
    ) -> list[AuditEntry]:
        """Newest first. ``envs`` limits to those environments, plus the env-less events of
        ``envless_actor`` when given; without ``envs``, everything."""
        with self._db.session(write=False) as session:
            query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
            if envs is not None:
                condition: ColumnElement[bool] = AuditEvent.env.in_(list(envs))
                if envless_actor is not None:
                    condition = condition | (AuditEvent.env.is_(None) & (AuditEvent.actor == envless_actor))
                query = query.where(condition)
            return [_entry(r) for r in session.execute(query).scalars()]

    def entries(self, batch: int = 1000, up_to: int | None = None, after: int = 0) -> Iterator[AuditEntry]:
        """Every event in order (after ``after``, up to ``up_to``), read in batches so a long trail is
        not held in memory."""
        last = after
        while True:
            with self._db.session(write=False) as session:
                query = select(AuditEvent).where(AuditEvent.seq > last)
                if up_to is not None:
                    query = query.where(AuditEvent.seq <= up_to)
                rows = session.execute(query.order_by(AuditEvent.seq).limit(batch)).scalars().all()
                chunk = [_entry(r) for r in rows]
            if not chunk:
                return
            yield from chunk
            last = chunk[-1].seq

    def verify(self, *, since: ChainHead | None = None) -> VerifyReport:
        """Walk the chain up to the head as it is now; events appended meanwhile are not judged.

        ``since`` (an event already verified, e.g. the last anchor) starts the walk after it."""
        start = since or EMPTY
        with self._db.session(write=False) as session:
            head = session.get(AuditHead, _HEAD_ID)
            head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
            keyed_from = self._marker_seq(session, cache=False)
        problems: list[str] = []
        key = self._key
        if key is not None and keyed_from is None and head_seq:
            # Also for a walk from an anchor (``since``): the events after it cannot be judged either.
            problems.append(
                f"none of the {head_seq} events is keyed although AUDIT_KEY is set: the whole trail "
                "could have been rewritten with the plain digest (if it was never keyed, an operator "
                "keys it with `menotime-bot audit key`)"
            )
        prev_hash, expected_seq, checked = start.hash, start.seq + 1, 0
        unchecked_from: int | None = None
        last_at: datetime | None = start.at
        for entry in self.entries(up_to=head_seq, after=start.seq):
            checked += 1
            if entry.seq != expected_seq:
                gap = f"{expected_seq}–{entry.seq - 1}" if entry.seq - 1 > expected_seq else f"{expected_seq}"
                problems.append(f"event {gap} is missing (deleted)")
            if entry.prev_hash != prev_hash:
                problems.append(
                    f"event {entry.seq}: does not follow the event before it (a row was deleted or inserted)"
                )
            keyed = keyed_from is not None and entry.seq >= keyed_from
            if keyed and key is None:
                unchecked_from = unchecked_from or entry.seq  # linking checked above; contents need the key
            elif _entry_digest(entry, key if keyed else None) != entry.hash:
                if entry.seq == keyed_from:
                    problems.append(
                        f"event {entry.seq}, where the trail became keyed, does not verify under "
                        "AUDIT_KEY: the key is not the one the trail was keyed with, or the event was "
                        "forged"
                    )
                    key = None  # every later event would say the same: judge their links only
                    unchecked_from = entry.seq + 1
                else:
                    problems.append(f"event {entry.seq}: its contents were changed after it was written")
            prev_hash, expected_seq, last_at = entry.hash, entry.seq + 1, entry.at
        last = expected_seq - 1
        if head_seq > last:
            problems.append(
                f"the trail ends at event {last} but {head_seq} were written (events at the end were deleted)"
            )
        elif head_seq and head_hash != prev_hash:
            problems.append("the trail's head record does not match its last event (tampered)")
        if unchecked_from is not None and unchecked_from > head_seq:
            unchecked_from = None
        return VerifyReport(
            checked=checked,
            problems=tuple(problems),
            keyed_from=keyed_from,
            head=ChainHead(seq=last, hash=prev_hash, at=last_at),
            unchecked_from=unchecked_from,
        )

    def export(self, out: io.TextIOBase, fmt: Literal["csv", "json"]) -> int:
        """Write every event to ``out``; returns how many."""
        count = 0
        if fmt == "csv":
            writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS)
            writer.writeheader()
            for entry in self.entries():
                writer.writerow(_flat(entry))
                count += 1
            return count
        out.write("[")
        for entry in self.entries():
            out.write(("," if count else "") + "\n  " + json.dumps(_flat(entry, args_as_text=False)))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count

    # -- internals ---------------------------------------------------------------------------------

    def _keying(self, session: Session, head: AuditHead, at: datetime) -> int | None:
        """Under the head's lock: the keying marker's seq, None for an unkeyed trail. With a key, an
        empty trail gets its marker now and a trail of unkeyed events is refused (`audit key` keys
        it); without one, a keyed trail is refused."""
        marker = self._marker_seq(session, head_seq=head.seq)
        if marker is None and self._key is not None:
            if head.seq:
                raise unkeyed_trail_error(head.seq)
            return self._write_marker(session, head, at).seq
        if marker is not None and self._key is None:
            raise AuditKeyError(
                f"The audit trail is keyed since event {marker} but AUDIT_KEY is not set: an event "
                "written without it would read as forged. Set AUDIT_KEY."
            )
        return marker

    def _marker_seq(self, session: Session, *, head_seq: int | None = None, cache: bool = True) -> int | None:
        """The keying marker's seq (the first event with its verb). Once found it is kept (the marker
        never moves); until then each call looks only at the events after those already looked at
        (a range of the primary key), up to ``head_seq`` (the locked head) when given. So a marker
        another replica wrote a moment ago is seen by the next append, under the head's lock."""
        if cache and self._marker is not None:
            return self._marker
        after = self._no_marker_to if cache else 0
        query = select(func.min(AuditEvent.seq)).where(
            AuditEvent.seq > after, AuditEvent.verb == MARKER_VERB, AuditEvent.source == MARKER_SOURCE
        )
        if head_seq is not None:
            query = query.where(AuditEvent.seq <= head_seq)
        found = session.execute(query).scalar_one_or_none()
        if cache:
            if found is not None:
                self._marker = found
            elif head_seq is not None:
                self._no_marker_to = head_seq  # events up to the locked head: none is the marker
        return found

    def _write_marker(
        self, session: Session, head: AuditHead, at: datetime, *, actor: str = BOT_ACTOR
    ) -> AuditEvent:
        done = head.seq
        detail = (
            (
                f"events 1-{done} are chained with plain SHA-256; from this event on every hash is HMAC-SHA256 "
                "under AUDIT_KEY"
            )
            if done
            else "every hash of this trail is HMAC-SHA256 under AUDIT_KEY"
        )
        row = self._add(
            session,
            head,
            self._key,
            at=at,
            actor=actor,
            source=MARKER_SOURCE,
            verb=MARKER_VERB,
            env=None,
            args={"unkeyed_events": done, "unkeyed_head": head.hash},
            rule="audit-key",
            outcome="keyed",
            detail=detail,
            request_id=None,
        )
        return row  # its seq is cached by the next lookup, once committed

    @staticmethod
    def _add(session: Session, head: AuditHead, key: bytes | None, **fields: Any) -> AuditEvent:
        seq = head.seq + 1
        digest = _digest(head.hash, key, seq=seq, **fields)
        row = AuditEvent(seq=seq, prev_hash=head.hash, hash=digest, **fields)
        session.add(row)
        head.seq, head.hash = seq, digest
        session.flush()
        return row


def _lock_head(session: Session) -> AuditHead:
    """The head row, locked: appends are serialised by it (PostgreSQL; BEGIN IMMEDIATE on SQLite).
    It exists from the first migration on, so the lock always has a row to hold."""
    return session.execute(select(AuditHead).where(AuditHead.id == _HEAD_ID).with_for_update()).scalar_one()


def _flat(entry: AuditEntry, *, args_as_text: bool = True) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "source": entry.source,
        "verb": entry.verb,
        "env": entry.env or "",
        "args": json.dumps(entry.args, sort_keys=True) if args_as_text else entry.args,
        "rule": entry.rule,
        "outcome": entry.outcome,
        "detail": entry.detail or "",
        "request_id": entry.request_id or "",
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
