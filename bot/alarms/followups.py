"""What follows an alarm thread's root: someone acknowledging it, snoozing it, and the reminders
replied while an acknowledged alarm stays in ALARM; each click redraws the root at once."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from bot.alarms.lookup import _fitted, open_alarms, thread_by_short_id
from bot.alarms.messages import _root
from bot.alarms.posting import PostFailed, _post, _safe
from bot.alarms.storms import _storm_of, storm_message
from bot.answers import ChangeResult
from bot.errors import PolicyViolation
from bot.events import parse_message
from bot.render import duration, when
from bot.rich import Mention, Rich
from bot.store.alarm_threads import AlarmThreadView, _replace

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.alarms")


def acknowledge(core: Core, *, short: str, user: str) -> AlarmThreadView:
    """Record who took the alarm, once, and say so in its thread."""
    view = thread_by_short_id(core, short)
    if view.state != "ALARM":
        raise PolicyViolation(
            f"`{view.title}` is {view.state or 'not in ALARM'} now; there is nothing to acknowledge."
        )
    now = core.clock.now()
    taken = core.stores.alarm_threads.acknowledge(key=view.key, user=user, at=now)
    if not taken:
        current = thread_by_short_id(core, short)
        raise PolicyViolation(
            Rich(
                f"`{view.title}` was already acknowledged by ",
                Mention(current.acknowledged_by or "someone"),
                f" at {when(current.acknowledged_at)}.",
            )
        )
    try:
        core.notifier.post(
            channel=view.channel,
            thread=view.ref,
            result=ChangeResult(
                headline=Rich("Acknowledged by ", Mention(user), f" at {when(now)}"), emoji=":eyes:"
            ),
        )
    except Exception as exc:  # noqa: BLE001 - the acknowledgement is recorded; the reply is a courtesy
        log.warning("alarm_ack_reply_failed", key=view.key, error=type(exc).__name__)
    acknowledged = _replace(view, acknowledged_by=user, acknowledged_at=now)
    redraw_root(core, acknowledged)  # the Acknowledge button goes, the root says who has it
    return acknowledged


def redraw_root(core: Core, view: AlarmThreadView) -> None:
    """Edits the root to ``view`` (after a click changed it) from the last notification kept."""
    if view.grouped:
        storm = _storm_of(core, view)
        if storm is not None:
            _safe(core, lambda: core.notifier.update(ref=storm.ref, result=storm_message(core, storm)))
        return
    if not view.last_notification:
        return  # a thread from before notifications were kept: its next notification redraws it
    event = _fitted(
        parse_message(view.last_notification.get("subject"), str(view.last_notification["message"]))
    )
    _safe(
        core,
        lambda: core.notifier.update(
            ref=view.ref,
            result=_root(core, view, event),
        ),
    )


def snooze(core: Core, *, short: str, user: str, minutes: int | None = None) -> AlarmThreadView:
    """Hold the reminders and the state replies of an alarm for a while (default from config)."""
    view = thread_by_short_id(core, short)
    if view.state != "ALARM":
        raise PolicyViolation(
            f"`{view.title}` is {view.state or 'not in ALARM'} now; there is nothing to snooze."
        )
    minutes = minutes or core.config.alarms.snooze_minutes
    now = core.clock.now()
    until = now + timedelta(minutes=minutes)
    core.stores.alarm_threads.snooze(key=view.key, user=user, until=until)
    _safe(
        core,
        lambda: core.notifier.post(
            channel=view.channel,
            thread=view.ref,
            result=ChangeResult(
                headline=Rich(
                    "Snoozed by ",
                    Mention(user),
                    f" until {when(until)}: reminders and state replies wait until then",
                ),
                emoji=":zzz:",
            ),
        ),
    )
    snoozed = _replace(view, snoozed_until=until, snoozed_by=user)
    redraw_root(core, snoozed)
    return snoozed


def remind_due(core: Core) -> int:
    """A reply in each acknowledged alarm still in ALARM once per reminder interval (after any
    snooze); the number posted. Safe with several replicas: each reminder is claimed first."""
    now = core.clock.now()
    every = timedelta(minutes=core.config.alarms.reminder_minutes)
    posted = 0
    threads = core.stores.alarm_threads
    for view in open_alarms(core):
        if view.acknowledged_by is None or view.snoozed(now) or view.acknowledged_at is None:
            continue
        last = max(t for t in (view.acknowledged_at, view.reminded_at, view.snoozed_until) if t is not None)
        if now - last < every:
            continue
        try:
            with core.db.transaction():
                claimed = threads.claim_reminder(key=view.key, now=now, every=every)
                if not claimed:
                    continue  # another replica reminded just now
                _post(
                    core,
                    channel=view.channel,
                    thread=view.ref,
                    result=ChangeResult(
                        headline=Rich(
                            f"Still in ALARM after {duration(view.alarm_since or view.since, now)} (acknowledged by ",
                            Mention(view.acknowledged_by),
                            f" {duration(view.acknowledged_at, now)} ago)",
                        ),
                        emoji=":alarm_clock:",
                    ),
                )
        except PostFailed:
            break  # rolled back: the next pass reminds
        posted += 1
    return posted
