"""Break-glass actions of a period, from the audit trail, for the weekly digest's review list.

The command service audits every allowed command with its arguments; a break-glass one carries
``--emergency: <reason>`` there (DESIGN §10 item 3: "listed for review in the weekly digest").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from bot.cost.results import EmergencyAction
from bot.store.db import Database, stored_utc
from bot.store.models import AuditEvent

FLAG = "--emergency"
_MAX_LISTED = 50


def emergency_actions(
    *, db: Database, since: datetime, until: datetime, envs: tuple[str, ...] | None = None
) -> tuple[EmergencyAction, ...]:
    """Allowed commands given ``--emergency`` in [since, until), oldest first."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.at >= since, AuditEvent.at < until, AuditEvent.outcome == "allowed")
        .order_by(AuditEvent.seq)
    )
    found: list[EmergencyAction] = []
    with db.session(write=False) as session:
        for row in session.execute(query).scalars():
            reason = (row.args or {}).get(FLAG)
            if not reason or (envs is not None and row.env not in envs):
                continue
            found.append(
                EmergencyAction(
                    at=stored_utc(row.at),
                    actor=row.actor,
                    verb=row.verb,
                    env=row.env,
                    reason=str(reason),
                    seq=row.seq,
                )
            )
            if len(found) >= _MAX_LISTED:
                break
    return tuple(found)
