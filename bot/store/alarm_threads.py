"""Alarm threads (DESIGN §6, step 4): the row the alarm path keeps for each Slack thread it posts.

:mod:`bot.alarms` decides what a notification, a click or a reminder does; this module is where
those decisions are read and written. Every write is a unit of work of its own, or joins the
caller's ``Database.transaction`` (an inbox row, its thread and the outbox commit together).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from bot.notify import MessageRef
from bot.store.db import Database, rowcount, stored_utc
from bot.store.models import AlarmThread

STORM_KIND = "storm"


@dataclass(frozen=True)
class AlarmThreadView:
    key: str
    short_id: str
    env: str | None
    channel: str
    root_ts: str
    title: str
    kind: str
    state: str | None
    since: datetime
    alarm_since: datetime | None
    opened_at: datetime
    updated_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    snoozed_until: datetime | None = None
    snoozed_by: str | None = None
    reminded_at: datetime | None = None
    flips: tuple[str, ...] = ()  # ISO times of recent state changes (flap detection)
    flap_noted_at: datetime | None = None
    grouped: bool = False  # lives in a storm message's thread rather than a root of its own
    last_notification: dict[str, Any] | None = None  # {"subject", "message"} as AWS sent them
    after_deployment: dict[str, Any] | None = None  # the watched deployment it fired after (bot/watch.py)

    def snoozed(self, now: datetime) -> bool:
        return self.snoozed_until is not None and now < self.snoozed_until

    @property
    def ref(self) -> MessageRef:
        return MessageRef(self.channel, self.root_ts)


def _aware(value: datetime | None) -> datetime:
    assert value is not None
    return stored_utc(value)


def _view(row: AlarmThread) -> AlarmThreadView:
    return AlarmThreadView(
        key=row.key,
        short_id=row.short_id,
        env=row.env,
        channel=row.channel,
        root_ts=row.root_ts,
        title=row.title,
        kind=row.kind,
        state=row.state,
        since=_aware(row.since),
        alarm_since=_aware(row.alarm_since) if row.alarm_since else None,
        opened_at=_aware(row.opened_at),
        updated_at=_aware(row.updated_at),
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=_aware(row.acknowledged_at) if row.acknowledged_at else None,
        snoozed_until=_aware(row.snoozed_until) if row.snoozed_until else None,
        snoozed_by=row.snoozed_by,
        reminded_at=_aware(row.reminded_at) if row.reminded_at else None,
        flips=tuple(row.flips or ()),
        flap_noted_at=_aware(row.flap_noted_at) if row.flap_noted_at else None,
        grouped=bool(row.grouped),
        last_notification=row.last_notification,
        after_deployment=row.after_deployment,
    )


def _replace(view: AlarmThreadView, **changes: object) -> AlarmThreadView:
    return replace(view, **changes)  # type: ignore[arg-type]


def _columns(view: AlarmThreadView) -> dict[str, object]:
    columns: dict[str, object] = {name: getattr(view, name) for name in AlarmThreadView.__dataclass_fields__}
    columns["flips"] = list(view.flips)
    return columns


class AlarmThreads:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------------------------------ reads

    def get(self, key: str) -> AlarmThreadView | None:
        with self._db.session(write=False) as session:
            row = session.get(AlarmThread, key)
            return _view(row) if row is not None else None

    def by_short_id(self, short: str) -> AlarmThreadView | None:
        with self._db.session(write=False) as session:
            row = session.scalars(select(AlarmThread).where(AlarmThread.short_id == short)).first()
            return _view(row) if row is not None else None

    def in_alarm(self, env: str | None = None) -> list[AlarmThreadView]:
        """Alarm threads now in ALARM, longest-standing first; only ``env``'s when given."""
        query = select(AlarmThread).where(AlarmThread.kind == "alarm", AlarmThread.state == "ALARM")
        if env is not None:
            query = query.where(AlarmThread.env == env)
        with self._db.session(write=False) as session:
            rows = session.scalars(query.order_by(AlarmThread.since, AlarmThread.key))
            return [_view(row) for row in rows]

    def alarms_opened(self, *, channel: str, since: datetime) -> int:
        """How many alarm threads were opened in ``channel`` from ``since`` on."""
        with self._db.session(write=False) as session:
            recent = session.scalar(
                select(func.count()).where(
                    AlarmThread.channel == channel,
                    AlarmThread.kind == "alarm",
                    AlarmThread.opened_at >= since,
                )
            )
        return int(recent or 0)

    def running_storm(self, *, channel: str, since: datetime) -> AlarmThreadView | None:
        """The newest storm message in ``channel`` updated from ``since`` on."""
        with self._db.session(write=False) as session:
            storm = session.scalars(
                select(AlarmThread)
                .where(
                    AlarmThread.channel == channel,
                    AlarmThread.kind == STORM_KIND,
                    AlarmThread.updated_at >= since,
                )
                .order_by(AlarmThread.opened_at.desc())
                .limit(1)
            ).first()
            return _view(storm) if storm is not None else None

    def storm_members(self, *, channel: str, root_ts: str) -> list[AlarmThreadView]:
        """The alarms grouped under the storm message ``root_ts``, oldest first."""
        with self._db.session(write=False) as session:
            rows = session.scalars(
                select(AlarmThread)
                .where(
                    AlarmThread.grouped.is_(True),
                    AlarmThread.channel == channel,
                    AlarmThread.root_ts == root_ts,
                )
                .order_by(AlarmThread.opened_at, AlarmThread.key)
            )
            return [_view(row) for row in rows]

    def storm_at(self, *, channel: str, root_ts: str) -> AlarmThreadView | None:
        """The storm message posted as ``root_ts`` in ``channel``."""
        with self._db.session(write=False) as session:
            row = session.scalars(
                select(AlarmThread).where(
                    AlarmThread.kind == STORM_KIND,
                    AlarmThread.channel == channel,
                    AlarmThread.root_ts == root_ts,
                )
            ).first()
            return _view(row) if row is not None else None

    # ------------------------------------------------------------------------------------ writes

    def add(self, view: AlarmThreadView, *, replace: bool = False) -> None:
        """Stores a new thread; with ``replace``, one already stored under its key is overwritten."""
        with self._db.session() as session:
            existing = session.get(AlarmThread, view.key) if replace else None
            if existing is None:
                session.add(AlarmThread(**_columns(view)))
            else:  # a generic message seen before: the newest post is the one to follow
                for name, value in _columns(view).items():
                    setattr(existing, name, value)

    def save(self, view: AlarmThreadView) -> None:
        """Writes what a notification changes (state, times, flips, the deployment behind it), so
        an acknowledgement or snooze written meanwhile stays; stores the thread if it is new."""
        with self._db.session() as session:
            row = session.get(AlarmThread, view.key)
            if row is None:
                session.add(AlarmThread(**_columns(view)))
                return
            row.state, row.since, row.alarm_since = view.state, view.since, view.alarm_since
            row.updated_at, row.flips, row.flap_noted_at = (
                view.updated_at,
                list(view.flips),
                view.flap_noted_at,
            )
            row.after_deployment = view.after_deployment

    def keep_notification(self, *, key: str, notification: dict[str, Any]) -> None:
        with self._db.session() as session:
            session.execute(
                update(AlarmThread)
                .where(AlarmThread.key == key)
                .values(last_notification=notification)
                .execution_options(synchronize_session=False)
            )

    def clear(self, *, key: str, **cleared: None) -> None:
        with self._db.session() as session:
            session.execute(
                update(AlarmThread)
                .where(AlarmThread.key == key)
                .values(**cleared)
                .execution_options(synchronize_session=False)
            )

    def acknowledge(self, *, key: str, user: str, at: datetime) -> bool:
        """Records ``user`` as having taken the alarm; False when someone already had."""
        with self._db.session() as session:
            return (
                rowcount(
                    session.execute(
                        update(AlarmThread)
                        .where(AlarmThread.key == key, AlarmThread.acknowledged_by.is_(None))
                        .values(acknowledged_by=user, acknowledged_at=at)
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            )

    def snooze(self, *, key: str, user: str, until: datetime) -> None:
        with self._db.session() as session:
            session.execute(
                update(AlarmThread)
                .where(AlarmThread.key == key)
                .values(snoozed_until=until, snoozed_by=user)
                .execution_options(synchronize_session=False)
            )

    def claim_reminder(self, *, key: str, now: datetime, every: timedelta) -> bool:
        """Takes the reminder due now; False when it was reminded within ``every`` (by another
        replica, just now)."""
        with self._db.session() as session:
            return (
                rowcount(
                    session.execute(
                        update(AlarmThread)
                        .where(
                            AlarmThread.key == key,
                            (AlarmThread.reminded_at.is_(None)) | (AlarmThread.reminded_at <= now - every),
                        )
                        .values(reminded_at=now)
                        .execution_options(synchronize_session=False)
                    )
                )
                == 1
            )
