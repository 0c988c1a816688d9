"""The audit trail: append-only, hash-chained, verifiable and exportable for HIPAA review.

Each event's hash is SHA-256 over a canonical JSON of its fields and the previous event's hash.
Editing any field, deleting or inserting a row breaks the chain; the head row (last seq and hash,
updated in the same transaction) catches a deletion at the end.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from bot.store.db import Database, stored_utc
from bot.store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
_HEAD_ID = 1
EXPORT_FIELDS = ("seq", "at", "actor", "source", "verb", "env", "args", "rule", "outcome", "detail",
                 "request_id", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    source: str
    verb: str
    env: str | None
    args: dict[str, Any]
    rule: str
    outcome: str
    detail: str | None
    request_id: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def _digest(prev_hash: str, *, seq: int, at: datetime, actor: str, source: str, verb: str, env: str | None,
            args: dict[str, Any], rule: str, outcome: str, detail: str | None, request_id: str | None) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "at": stored_utc(at).isoformat(timespec="microseconds"),
            "actor": actor,
            "source": source,
            "verb": verb,
            "env": env,
            "args": args,
            "rule": rule,
            "outcome": outcome,
            "detail": detail,
            "request_id": request_id,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, *, at: datetime, actor: str, source: str, verb: str, env: str | None,
               args: dict[str, Any], rule: str, outcome: str, detail: str | None = None,
               request_id: str | None = None) -> AuditEntry:
        args = json.loads(json.dumps(args, default=str))  # exactly what the JSON column will hold
        at = stored_utc(at)
        # Serialised by the head row's lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite).
        with self._db.session() as session:
            # The head row exists from the first migration on, so this lock always has a row to hold.
            head = session.execute(
                select(AuditHead).where(AuditHead.id == _HEAD_ID).with_for_update()
            ).scalar_one()
            seq = head.seq + 1
            digest = _digest(head.hash, seq=seq, at=at, actor=actor, source=source, verb=verb, env=env,
                             args=args, rule=rule, outcome=outcome, detail=detail, request_id=request_id)
            row = AuditEvent(seq=seq, at=at, actor=actor, source=source, verb=verb, env=env, args=args,
                             rule=rule, outcome=outcome, detail=detail, request_id=request_id,
                             prev_hash=head.hash, hash=digest)
            session.add(row)
            head.seq, head.hash = seq, digest
            session.flush()
            return _entry(row)

    def recent(self, *, envs: Sequence[str] | None = None, limit: int = 20,
               envless_actor: str | None = None) -> list[AuditEntry]:
        """Newest first. ``envs`` limits to those environments, plus the env-less events of
        ``envless_actor`` when given; without ``envs``, everything."""
        with self._db.session(write=False) as session:
            query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
            if envs is not None:
                condition = AuditEvent.env.in_(list(envs))
                if envless_actor is not None:
                    condition = condition | (AuditEvent.env.is_(None) & (AuditEvent.actor == envless_actor))
                query = query.where(condition)
            return [_entry(r) for r in session.execute(query).scalars()]

    def entries(self, batch: int = 1000, up_to: int | None = None) -> Iterator[AuditEntry]:
        """Every event in order (up to ``up_to``), read in batches so a long trail is not held in memory."""
        last = 0
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

    def verify(self) -> VerifyReport:
        """Walk the chain up to the head as it is now; events appended meanwhile are not judged."""
        with self._db.session(write=False) as session:
            head = session.get(AuditHead, _HEAD_ID)
            head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
        problems: list[str] = []
        prev_hash, expected_seq, checked = GENESIS, 1, 0
        for entry in self.entries(up_to=head_seq):
            checked += 1
            if entry.seq != expected_seq:
                gap = f"{expected_seq}–{entry.seq - 1}" if entry.seq - 1 > expected_seq else f"{expected_seq}"
                problems.append(f"event {gap} is missing (deleted)")
            if entry.prev_hash != prev_hash:
                problems.append(f"event {entry.seq}: does not follow the event before it (a row was deleted or "
                                "inserted)")
            recomputed = _digest(entry.prev_hash, seq=entry.seq, at=entry.at, actor=entry.actor,
                                 source=entry.source, verb=entry.verb, env=entry.env, args=entry.args,
                                 rule=entry.rule, outcome=entry.outcome, detail=entry.detail,
                                 request_id=entry.request_id)
            if recomputed != entry.hash:
                problems.append(f"event {entry.seq}: its contents were changed after it was written")
            prev_hash, expected_seq = entry.hash, entry.seq + 1
        last = expected_seq - 1
        if head_seq > last:
            problems.append(f"the trail ends at event {last} but {head_seq} were written "
                            "(events at the end were deleted)")
        elif head_seq and head_hash != prev_hash:
            problems.append("the trail's head record does not match its last event (tampered)")
        return VerifyReport(checked=checked, problems=tuple(problems))

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


def _entry(row: AuditEvent) -> AuditEntry:
    return AuditEntry(seq=row.seq, at=stored_utc(row.at), actor=row.actor, source=row.source, verb=row.verb,
                      env=row.env, args=dict(row.args or {}), rule=row.rule, outcome=row.outcome,
                      detail=row.detail, request_id=row.request_id, prev_hash=row.prev_hash, hash=row.hash)
