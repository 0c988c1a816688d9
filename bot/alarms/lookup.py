"""Naming and finding alarm threads: the key a thread is stored under (fitted to the table) and the
short id a button or command names it by; the threads in ALARM, one by key or by short id, and
where its root is in Slack once the outbox has posted it."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.errors import NotFound
from bot.events import Event
from bot.notify import MessageRef
from bot.outbox import Outbox, queued_id
from bot.store.alarm_threads import AlarmThreadView

if TYPE_CHECKING:
    from bot.core import Core

_KEY_LIMIT = 300  # AlarmThread.key


def short_id(key: str) -> str:
    """The button value for a thread: the AlarmArn can exceed what a value should carry."""
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _fitted(event: Event) -> Event:
    """``event`` with a key that fits the thread table: an AlarmArn may be longer (255-character
    alarm names), and a key too long for PostgreSQL would fail its inbox row, and every one after
    it, on every run. The same long key always gives the same short one."""
    if len(event.key) <= _KEY_LIMIT:
        return event
    digest = hashlib.sha256(event.key.encode()).hexdigest()[:32]
    return replace(event, key=f"{event.key[: _KEY_LIMIT - len(digest) - 1]}#{digest}")


def open_alarms(core: Core, env: str | None = None) -> list[AlarmThreadView]:
    """Alarm threads now in ALARM, longest-standing first; only ``env``'s when given."""
    return core.stores.alarm_threads.in_alarm(env)


def posted_ref(core: Core, ref: MessageRef) -> MessageRef | None:
    """Slack's channel id and ts for a thread root; None while it waits in the outbox."""
    return ref if queued_id(ref.ts) is None else Outbox(core.db, core.clock).resolve(ref)


def thread_for(core: Core, key: str) -> AlarmThreadView | None:
    return core.stores.alarm_threads.get(key)


def thread_by_short_id(core: Core, short: str) -> AlarmThreadView:
    view = core.stores.alarm_threads.by_short_id(short.strip().lower())
    if view is None:
        raise NotFound(f"There is no alarm thread `{short.strip()[:20]}`.")
    return view


def opened_thread(
    event: Event, *, env: str | None, channel: str, at: datetime, now: datetime, **more: Any
) -> AlarmThreadView:
    """The thread an alarm's first notification opens (not posted yet: no ``root_ts``)."""
    return AlarmThreadView(
        key=event.key,
        short_id=short_id(event.key),
        env=env,
        channel=channel,
        root_ts="",
        title=event.title[:300],
        kind=event.kind,
        state=event.state,
        since=at,
        alarm_since=at if event.state == "ALARM" else None,
        opened_at=now,
        updated_at=now,
        acknowledged_by=None,
        acknowledged_at=None,
        flips=(at.isoformat(),),
        **more,
    )
