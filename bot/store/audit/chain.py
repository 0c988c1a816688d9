"""The chain's links: the event and head values, the key, and the digest that ties each event to the
one before it (plain SHA-256 for the unkeyed events, HMAC-SHA256 under ``AUDIT_KEY`` from the keying
marker on)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError
from bot.store.db import stored_utc
from bot.store.models import AuditEvent

if TYPE_CHECKING:
    from bot.settings import Settings

GENESIS = "0" * 64
KEY_MIN_CHARS = 32


class AuditKeyError(ConfigError):
    """AUDIT_KEY is missing for a keyed trail, too short, or not the key the trail was keyed with;
    or the key is set for a trail of unkeyed events nobody has keyed yet (`menotime-bot audit key`)."""


class AuditKeyingRefused(ValueError):
    """`audit key` found the trail changed (or already keyed) since the operator checked it."""


def unkeyed_trail_error(events: int) -> AuditKeyError:
    return AuditKeyError(
        f"AUDIT_KEY is set but the audit trail's {events} events were written without it and "
        "nobody has keyed it yet: run `menotime-bot audit key` (once, as an operator)."
    )


def chain_key(settings: Settings) -> bytes | None:
    """The audit chain's HMAC key from the settings; None when unset (an unkeyed trail)."""
    if settings.audit_key is None:
        return None
    key = settings.audit_key.get_secret_value()
    if len(key) < KEY_MIN_CHARS:
        raise AuditKeyError(
            f"AUDIT_KEY is too short ({len(key)} characters): use at least {KEY_MIN_CHARS} random "
            "characters, e.g. the output of `openssl rand -hex 32`."
        )
    return key.encode()


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
class ChainHead:
    """The last event of the trail: what an anchor records."""

    seq: int
    hash: str
    at: datetime | None = None


EMPTY = ChainHead(seq=0, hash=GENESIS)


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    problems: tuple[str, ...] = field(default_factory=tuple)
    head: ChainHead = EMPTY  # the head the walk judged the trail against
    keyed_from: int | None = None  # the keying marker's seq; None: the trail is unkeyed
    unchecked_from: int | None = None  # keyed events whose contents could not be checked (no key)

    @property
    def ok(self) -> bool:
        return not self.problems and self.unchecked_from is None

    @property
    def keyed(self) -> bool:
        return self.keyed_from is not None


def _digest(
    prev_hash: str,
    key: bytes | None,
    *,
    seq: int,
    at: datetime,
    actor: str,
    source: str,
    verb: str,
    env: str | None,
    args: dict[str, Any],
    rule: str,
    outcome: str,
    detail: str | None,
    request_id: str | None,
) -> str:
    """HMAC-SHA256 under ``key``; plain SHA-256 (the unkeyed events written before a key) without."""
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
    message = f"{prev_hash}\n{canonical}".encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _entry_digest(entry: AuditEntry, key: bytes | None) -> str:
    return _digest(
        entry.prev_hash,
        key,
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        source=entry.source,
        verb=entry.verb,
        env=entry.env,
        args=entry.args,
        rule=entry.rule,
        outcome=entry.outcome,
        detail=entry.detail,
        request_id=entry.request_id,
    )


def _entry(row: AuditEvent) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=stored_utc(row.at),
        actor=row.actor,
        source=row.source,
        verb=row.verb,
        env=row.env,
        args=dict(row.args or {}),
        rule=row.rule,
        outcome=row.outcome,
        detail=row.detail,
        request_id=row.request_id,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
