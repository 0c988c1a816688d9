"""The audit trail: append-only, hash-chained under a secret key, verifiable and exportable for HIPAA review.

Each event's hash covers a canonical JSON of its fields and the previous event's hash, so editing
any field, deleting or inserting a row breaks the chain; the head row (last seq and hash, updated
in the same transaction) catches a deletion at the end.

**Keyed.** A plain digest protects nothing from whoever can write the database: they delete an
event and recompute every later hash with the same function. So each hash is HMAC-SHA256 under
``AUDIT_KEY``, a key that never lives in the database (the environment or Secrets Manager); without
it a rewrite cannot produce hashes that verify. Truncation (deleting the newest events and moving
the head back) is caught outside the database, by the anchors of :mod:`bot.audit_anchor`.

**From an unkeyed trail to a keyed one.** Trails written before the key existed are chained with
plain SHA-256. They are never rewritten: re-keying history would mean switching off the
append-only trigger and replacing every hash, which is exactly the act the trail exists to expose,
and an auditor could no longer tell the re-keyed history from a forged one. Instead, the first
event appended with a key is a *keying marker* (verb ``audit-chain-keyed``), itself keyed, whose
``prev_hash`` is the last unkeyed hash. The bot writes it by itself only on an EMPTY trail; a
trail that already holds unkeyed events is keyed by an operator, once, with ``menotime-bot audit
key`` (which verifies the unkeyed chain and prints its head to be recorded). Otherwise anyone who
can write the database could delete the marker, rewrite the trail with the plain digest, and
have the next keyed process freeze the forgery under a fresh marker. Verification walks the unkeyed prefix with SHA-256 and
everything from the marker on with HMAC. Because the marker's HMAC covers the hash of the
prefix's last event, and that hash chains every earlier one, the unkeyed prefix is frozen from the
moment the marker is written: rewriting it breaks the link to a marker nobody can re-sign. A
trail with events but no valid marker fails verification when a key is configured (it could be
a keyed trail rewritten whole with the plain digest), and a process without the key refuses to
append to a keyed trail rather than write events that would read as forged: it looks for a marker
written by another replica under the head's lock on every append (among the events it has not
looked at yet, so the lookup is a short range of the primary key). The anchors record
the head's keyed hash, so the marker's position cannot be moved either.
"""

from bot.store.audit.chain import (
    EMPTY,
    GENESIS,
    KEY_MIN_CHARS,
    AuditEntry,
    AuditKeyError,
    AuditKeyingRefused,
    ChainHead,
    VerifyReport,
    chain_key,
    unkeyed_trail_error,
)
from bot.store.audit.trail import ACTOR_LENGTH, BOT_ACTOR, EXPORT_FIELDS, MARKER_SOURCE, MARKER_VERB, AuditLog

__all__ = [
    "ACTOR_LENGTH",
    "BOT_ACTOR",
    "EMPTY",
    "EXPORT_FIELDS",
    "GENESIS",
    "KEY_MIN_CHARS",
    "MARKER_SOURCE",
    "MARKER_VERB",
    "AuditEntry",
    "AuditKeyError",
    "AuditKeyingRefused",
    "AuditLog",
    "ChainHead",
    "VerifyReport",
    "chain_key",
    "unkeyed_trail_error",
]
