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

from bot.store.changes.freezes import Freeze, Freezes
from bot.store.changes.leases import Lease, Leases
from bot.store.changes.requests import (
    REQUEST_PREFIX,
    ChangeRequestView,
    Decision,
    RequestKind,
    Requests,
    RequestStatus,
)
from bot.store.changes.timestamps import PACIFIC, short_pt

__all__ = [
    "PACIFIC",
    "REQUEST_PREFIX",
    "ChangeRequestView",
    "Decision",
    "Freeze",
    "Freezes",
    "Lease",
    "Leases",
    "RequestKind",
    "RequestStatus",
    "Requests",
    "short_pt",
]
