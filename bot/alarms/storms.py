"""Alarm storms: when more new alarms arrive in a channel within a minute than
``alarms.storm_threshold``, they are filed under one message that lists them all, and each one's
later changes are replied in that message's thread."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.alarms.lookup import opened_thread, short_id
from bot.alarms.messages import GENERIC_EMOJI, STATE_EMOJI
from bot.alarms.posting import POSTED, _post, _safe
from bot.answers import ChangeResult
from bot.events import Event
from bot.render import plural, when
from bot.store.alarm_threads import STORM_KIND, AlarmThreadView, _replace

if TYPE_CHECKING:
    from bot.core import Core

_STORM_LIST_LIMIT = 40


def _storming(core: Core, channel: str, now: datetime) -> bool:
    """More than the threshold of new alarm threads in this channel within the last minute."""
    recent = core.stores.alarm_threads.alarms_opened(channel=channel, since=now - timedelta(minutes=1))
    return recent >= core.config.alarms.storm_threshold


def _join_storm(
    core: Core,
    event: Event,
    env: str | None,
    channel: str,
    *,
    at: datetime,
    now: datetime,
    origin_at: datetime | None,
) -> str:
    """Files the alarm under the channel's storm message (posted now if there is none running):
    one message listing them all, each alarm's later changes replied in its thread."""
    threads = core.stores.alarm_threads
    storm_view = threads.running_storm(channel=channel, since=now - timedelta(minutes=1))
    member = opened_thread(event, env=env, channel=channel, at=at, now=now, grouped=True)
    if storm_view is None:
        key = f"storm:{channel}:{now.isoformat()}"
        storm_view = AlarmThreadView(
            key=key,
            short_id=short_id(key),
            env=env,
            channel=channel,
            root_ts="",
            title=f"Alarm storm in {channel}",
            kind=STORM_KIND,
            state=None,
            since=now,
            alarm_since=None,
            opened_at=now,
            updated_at=now,
            acknowledged_by=None,
            acknowledged_at=None,
        )
        ref = _post(
            core, channel=channel, result=storm_message(core, storm_view, extra=member), origin_at=origin_at
        )
        storm_view = _replace(storm_view, channel=ref.channel, root_ts=ref.ts)
        threads.add(storm_view)
    else:
        storm_view = _replace(storm_view, updated_at=now)
        threads.save(storm_view)
    member = _replace(member, channel=storm_view.channel, root_ts=storm_view.root_ts)
    threads.add(member)
    _safe(core, lambda: core.notifier.update(ref=storm_view.ref, result=storm_message(core, storm_view)))
    return POSTED


def storm_message(
    core: Core, storm: AlarmThreadView, *, extra: AlarmThreadView | None = None
) -> ChangeResult:
    members = _storm_members(core, storm) + ([extra] if extra is not None else [])
    lines = [
        f"{STATE_EMOJI.get(m.state or '', GENERIC_EMOJI)} {m.state or 'event'} — {m.title} (`{m.short_id}`)"
        for m in members[:_STORM_LIST_LIMIT]
    ]
    if len(members) > _STORM_LIST_LIMIT:
        lines.append(f"…and {len(members) - _STORM_LIST_LIMIT} more")
    in_alarm = sum(1 for m in members if m.state == "ALARM")
    return ChangeResult(
        headline=f"Alarm storm in {storm.channel}: {plural(len(members), 'alarm')} at once, {in_alarm} in ALARM",
        emoji=":rotating_light:",
        details=tuple(lines),
        footer=f"Grouped to keep the channel readable; each alarm's changes are replied in this thread. "
        f"`/menotime ack <id>` acknowledges one. Since {when(storm.opened_at)}",
    )


def _storm_members(core: Core, storm: AlarmThreadView) -> list[AlarmThreadView]:
    return core.stores.alarm_threads.storm_members(channel=storm.channel, root_ts=storm.root_ts)


def _storm_of(core: Core, member: AlarmThreadView) -> AlarmThreadView | None:
    return core.stores.alarm_threads.storm_at(channel=member.channel, root_ts=member.root_ts)
