"""One Slack thread per alarm: a notification opens the thread (its root message), and each later
state change is a reply in it and an edit of the root to the current state. Repeats refresh the
root, late notifications are left out, flapping is summarised once and a snooze holds the replies.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot import watch
from bot.alarms.lookup import _fitted, opened_thread
from bot.alarms.messages import _root, reply_message
from bot.alarms.posting import POSTED, REFRESHED, STALE, THREADED, _post, _safe
from bot.alarms.storms import _join_storm, _storm_of, _storming, storm_message
from bot.answers import ChangeResult
from bot.events import Event
from bot.render import when
from bot.store.alarm_threads import AlarmThreadView, _aware, _replace

if TYPE_CHECKING:
    from bot.core import Core


def record_event(
    core: Core,
    event: Event,
    env: str | None,
    channel: str,
    *,
    origin_at: datetime | None = None,
    notification: dict[str, Any] | None = None,
) -> str:
    """Posts ``event`` (a new thread, a reply, or a root refresh); the inbox outcome. Raises
    PostFailed when Slack did not take the message, with nothing recorded. ``notification`` (the
    subject and message as AWS sent them) is kept with the thread so a click can redraw its root."""
    event = _fitted(event)
    outcome = _record(core, event, env, channel, origin_at=origin_at)
    if notification is not None and outcome != STALE:
        core.stores.alarm_threads.keep_notification(key=event.key, notification=notification)
    return outcome


def _record(core: Core, event: Event, env: str | None, channel: str, *, origin_at: datetime | None) -> str:
    now = core.clock.now()
    at = _aware(event.at) if event.at else now
    if event.kind == "generic":
        return _post_root(core, event, env, channel, at=at, now=now, replace=True, origin_at=origin_at)
    threads = core.stores.alarm_threads
    view = threads.get(event.key)
    if view is None:
        if event.kind == "alarm" and _storming(core, channel, now):
            return _join_storm(core, event, env, channel, at=at, now=now, origin_at=origin_at)
        return _post_root(core, event, env, channel, at=at, now=now, replace=False, origin_at=origin_at)

    if at < view.since:
        # An older notification delivered late: the thread already shows something newer.
        return STALE
    if event.state == view.state:
        refreshed = _replace(view, updated_at=now)
        _refresh_root(core, refreshed, event)
        threads.save(refreshed)
        return REFRESHED
    window = timedelta(minutes=core.config.alarms.flap_window_minutes)
    flips = (*(f for f in view.flips if datetime.fromisoformat(f) > at - window), at.isoformat())
    changed = _replace(
        view,
        state=event.state,
        since=at,
        updated_at=now,
        flips=flips,
        alarm_since=at if event.state == "ALARM" else view.alarm_since,
    )
    # AlarmThreads.save writes only what the notification changes (an acknowledgement may land
    # meanwhile); forgetting the last incident's acknowledgement and snooze is a write of its own.
    if event.state == "ALARM" and view.state == "OK" and at - view.since >= window:
        # A new incident, not a flap: last time's acknowledgement and snooze do not carry over.
        changed = _forget(
            core,
            changed,
            acknowledged_by=None,
            acknowledged_at=None,
            snoozed_until=None,
            snoozed_by=None,
            reminded_at=None,
            after_deployment=None,
        )
    if event.state == "ALARM" and event.kind == "alarm" and changed.after_deployment is None:
        changed = _tie_to_deployment(core, changed, at)
    elif view.snoozed_until is not None and not view.snoozed(now):
        changed = _forget(
            core, changed, snoozed_until=None, snoozed_by=None
        )  # over: the Snooze button is back
    if view.snoozed(now):
        pass  # held: the root still shows the current state, and the snooze reply said so
    elif len(flips) > core.config.alarms.flap_threshold:
        if view.flap_noted_at is None or view.flap_noted_at < now - window:
            _post(
                core,
                channel=view.channel,
                thread=view.ref,
                origin_at=origin_at,
                result=ChangeResult(
                    headline=f"Flapping: {len(flips)} state changes in {core.config.alarms.flap_window_minutes} min. "
                    "Further changes update the first message instead of replying here.",
                    emoji=":repeat:",
                    footer=when(at),
                ),
            )
            changed = _replace(changed, flap_noted_at=now)
    else:
        _post(
            core,
            channel=view.channel,
            result=reply_message(view, event, at=at),
            thread=view.ref,
            origin_at=origin_at,
        )
    threads.save(changed)
    _refresh_root(core, changed, event)
    return THREADED


def _tie_to_deployment(core: Core, view: AlarmThreadView, at: datetime) -> AlarmThreadView:
    """An alarm firing again inside a post-deploy watch is tied to that deployment."""
    after = watch.deployment_behind(core, env=view.env, at=at)
    if after is None:
        return view
    watch.note_alarm(core, after=after, title=view.title, channel=view.channel)
    return _replace(view, after_deployment=after)


def _post_root(
    core: Core,
    event: Event,
    env: str | None,
    channel: str,
    *,
    at: datetime,
    now: datetime,
    replace: bool,
    origin_at: datetime | None,
) -> str:
    draft = opened_thread(
        event,
        env=env,
        channel=channel,
        at=at,
        now=now,
        after_deployment=watch.deployment_behind(core, env=env, at=at)
        if event.kind == "alarm" and event.state == "ALARM"
        else None,
    )
    ref = _post(
        core,
        channel=channel,
        result=_root(core, draft, event),
        origin_at=origin_at,
    )
    if draft.after_deployment:
        watch.note_alarm(core, after=draft.after_deployment, title=draft.title, channel=channel)
    view = _replace(draft, channel=ref.channel, root_ts=ref.ts)
    core.stores.alarm_threads.add(view, replace=replace)
    return POSTED


def _refresh_root(core: Core, view: AlarmThreadView, event: Event) -> None:
    """Edits the root to the current state: the alarm's own, or its storm message's list."""
    if view.grouped:
        storm = _storm_of(core, view)
        if storm is not None:
            _safe(core, lambda: core.notifier.update(ref=storm.ref, result=storm_message(core, storm)))
        return
    _safe(
        core,
        lambda: core.notifier.update(
            ref=view.ref,
            result=_root(core, view, event),
        ),
    )


def _forget(core: Core, view: AlarmThreadView, **cleared: None) -> AlarmThreadView:
    core.stores.alarm_threads.clear(key=view.key, **cleared)
    return _replace(view, **cleared)
