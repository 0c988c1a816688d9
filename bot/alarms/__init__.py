"""Alarms into Slack threads (DESIGN §6, step 4): one thread per alarm, the root edited in place.

``process_inbox`` takes the stored SNS messages oldest first, parses and routes each one, and
records it: the first notification for a key posts the root message (state, reason, metric,
threshold, time in PT and UTC, region, console link, *Acknowledge*); each later state change is a
short reply in the thread ("OK — resolved after 17 min") and an edit of the root to the current
state; a repeat of the same state only refreshes the root. Generic events (anything the parser
cannot read) each get a message of their own.

Nothing is lost: an inbox row is marked processed only after its message is posted. When posting
fails (the notifier answers None or raises) the row stays pending and the run stops there, so a
later run retries it, and the messages after it keep their order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from bot import watch
from bot.errors import NotFound, PolicyViolation
from bot.events import Event, parse_message, route
from bot.notify import MessageRef
from bot.outbox import Outbox, queued_id
from bot.render import duration, minutes_text, plural, when
from bot.results import Button, ChangeResult
from bot.store.db import rowcount, stored_utc
from bot.store.inbox import Inbox
from bot.store.models import AlarmThread

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.alarms")

STATE_EMOJI = {"ALARM": ":red_circle:", "OK": ":large_green_circle:", "INSUFFICIENT_DATA": ":white_circle:"}
GENERIC_EMOJI = ":information_source:"
ACK_ACTION = "menotime_ack"
SNOOZE_ACTION = "menotime_snooze"
ROLLBACK_ACTION = "menotime_alarm_rollback"
REVISION_ROLLBACK_ACTION = "menotime_rollback"  # value env:revision, as the rollout message's button
RUNBOOK_ACTION = "menotime_runbook"
PROD = "prod"
# A service alarm is one about what a rollback would change: the ECS service or the load balancer
# in front of it (5xx, latency, unhealthy targets), not the database or the account.
_SERVICE_NAMESPACES = frozenset({"AWS/ECS", "ECS/ContainerInsights", "AWS/ApplicationELB"})
_SERVICE_DIMENSIONS = frozenset({"ServiceName", "TargetGroup", "LoadBalancer"})
# Inbox outcomes.
POSTED, THREADED, REFRESHED, STALE = "posted", "threaded", "refreshed", "stale"
_FACT_LIMIT = 600
_KEY_LIMIT = 300  # AlarmThread.key


class PostFailed(Exception):
    """Slack did not take a message: the inbox row stays pending for a later run."""


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


def short_id(key: str) -> str:
    """The button value for a thread: the AlarmArn can exceed what a value should carry."""
    return hashlib.sha1(key.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------- inbox


def process_inbox(*, core: Core, limit: int = 100) -> int:
    """Posts the pending inbox messages, oldest first; the number processed (marked) this run."""
    inbox = Inbox(core.db)
    done = 0
    while done < limit:
        current: tuple[int, str, str] | None = None
        try:
            # One transaction per message: the thread row, the messages queued in the outbox and the
            # inbox mark commit together, so a crash in between cannot post a message twice.
            with core.db.transaction():
                row = inbox.claim_next()
                if row is None:
                    break
                current = (row.id, row.message_id, row.topic_arn)
                subject, message = _envelope(row.body, row.subject)
                event = parse_message(subject, message)
                env, channel = route(event, core.config, topic_arn=row.topic_arn)
                outcome = record_event(
                    core,
                    event,
                    env,
                    channel,
                    origin_at=stored_utc(row.sns_timestamp),
                    notification={"subject": subject, "message": message},
                )
                inbox.mark(id=row.id, outcome=outcome, processed_at=core.clock.now())
            if event.kind == "ecs_deployment" and env in core.config.environments:
                # Someone deployed (CI/CD, the console, the bot): record it from ECS, after the commit.
                def observe(env: str = env, event: Event = event) -> None:
                    watch.deployment_event(core, core.config.env(env), event)

                _safe(core, observe)
        except PostFailed as exc:
            log.warning("alarm_post_failed", key=event.key, channel=channel, error=str(exc))
            break  # later messages wait too: they may belong to the same thread, and order matters
        except (OperationalError, InterfaceError):
            raise  # the database itself: nothing was recorded; the worker tries again later
        except Exception as exc:
            if current is None:
                raise
            _set_aside(core, inbox, *current, error=exc)
        done += 1
    return done


def _set_aside(
    core: Core, inbox: Inbox, row_id: int, message_id: str, topic_arn: str, *, error: Exception
) -> None:
    """A message that cannot be processed is marked failed (kept in the inbox for a person to look
    at) and said so in the default alerts channel, so the messages behind it go on."""
    log.error(
        "alarm_processing_failed",
        inbox_id=row_id,
        message_id=message_id,
        error=type(error).__name__,
        exc_info=error,
    )
    with core.db.transaction():
        if inbox.mark(id=row_id, outcome="failed", processed_at=core.clock.now()):
            _post(
                core,
                channel=core.config.channels.default_alerts,
                result=ChangeResult(
                    headline=f"An AWS notification could not be turned into a thread ({type(error).__name__}); "
                    "it is kept in the inbox",
                    emoji=":warning:",
                    facts=(("MessageId", message_id[:100]), ("Topic", topic_arn[:256])),
                ),
            )


def _envelope(body: str, subject: str | None) -> tuple[str | None, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return subject, body
    if not isinstance(data, dict):
        return subject, body
    message = data.get("Message")
    return (
        data.get("Subject") if data.get("Subject") is not None else subject,
        message if isinstance(message, str) else json.dumps(message),
    )


# ---------------------------------------------------------------------------------------- record


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
        with core.db.session() as session:
            session.execute(
                update(AlarmThread)
                .where(AlarmThread.key == event.key)
                .values(last_notification=notification)
                .execution_options(synchronize_session=False)
            )
    return outcome


def _record(core: Core, event: Event, env: str | None, channel: str, *, origin_at: datetime | None) -> str:
    now = core.clock.now()
    at = _aware(event.at) if event.at else now
    if event.kind == "generic":
        return _post_root(core, event, env, channel, at=at, now=now, replace=True, origin_at=origin_at)
    with core.db.session(write=False) as session:
        thread = session.get(AlarmThread, event.key)
    if thread is None:
        if event.kind == "alarm" and _storming(core, channel, now):
            return _join_storm(core, event, env, channel, at=at, now=now, origin_at=origin_at)
        return _post_root(core, event, env, channel, at=at, now=now, replace=False, origin_at=origin_at)

    view = _view(thread)
    if at < view.since:
        # An older notification delivered late: the thread already shows something newer.
        return STALE
    if event.state == view.state:
        refreshed = _replace(view, updated_at=now)
        _refresh_root(core, refreshed, event)
        _save(core, refreshed)
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
    # _save writes only what the notification changes (an acknowledgement may land meanwhile);
    # forgetting the last incident's acknowledgement and snooze is a write of its own.
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
    _save(core, changed)
    _refresh_root(core, changed, event)
    return THREADED


def _tie_to_deployment(core: Core, view: AlarmThreadView, at: datetime) -> AlarmThreadView:
    """An alarm firing again inside a post-deploy watch is tied to that deployment."""
    after = watch.deployment_behind(core, env=view.env, at=at)
    if after is None:
        return view
    watch.note_alarm(core, after=after, title=view.title, channel=view.channel)
    return _replace(view, after_deployment=after)


def _fitted(event: Event) -> Event:
    """``event`` with a key that fits the thread table: an AlarmArn may be longer (255-character
    alarm names), and a key too long for PostgreSQL would fail its inbox row, and every one after
    it, on every run. The same long key always gives the same short one."""
    if len(event.key) <= _KEY_LIMIT:
        return event
    digest = hashlib.sha256(event.key.encode()).hexdigest()[:32]
    return replace(event, key=f"{event.key[: _KEY_LIMIT - len(digest) - 1]}#{digest}")


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
    draft = AlarmThreadView(
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
    with core.db.session() as session:
        existing = session.get(AlarmThread, view.key) if replace else None
        if existing is None:
            session.add(AlarmThread(**_columns(view)))
        else:  # a generic message seen before: the newest post is the one to follow
            for name, value in _columns(view).items():
                setattr(existing, name, value)
    return POSTED


# ---------------------------------------------------------------------------------------- storms

STORM_KIND = "storm"
_STORM_LIST_LIMIT = 40


def _storming(core: Core, channel: str, now: datetime) -> bool:
    """More than the threshold of new alarm threads in this channel within the last minute."""
    with core.db.session(write=False) as session:
        recent = session.scalar(
            select(func.count()).where(
                AlarmThread.channel == channel,
                AlarmThread.kind == "alarm",
                AlarmThread.opened_at >= now - timedelta(minutes=1),
            )
        )
    return int(recent or 0) >= core.config.alarms.storm_threshold


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
    with core.db.session(write=False) as session:
        storm = session.scalars(
            select(AlarmThread)
            .where(
                AlarmThread.channel == channel,
                AlarmThread.kind == STORM_KIND,
                AlarmThread.updated_at >= now - timedelta(minutes=1),
            )
            .order_by(AlarmThread.opened_at.desc())
            .limit(1)
        ).first()
        storm_view = _view(storm) if storm is not None else None
    member = AlarmThreadView(
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
        grouped=True,
    )
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
        with core.db.session() as session:
            session.add(AlarmThread(**_columns(storm_view)))
    else:
        storm_view = _replace(storm_view, updated_at=now)
        _save(core, storm_view)
    member = _replace(member, channel=storm_view.channel, root_ts=storm_view.root_ts)
    with core.db.session() as session:
        session.add(AlarmThread(**_columns(member)))
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
    with core.db.session(write=False) as session:
        rows = session.scalars(
            select(AlarmThread)
            .where(
                AlarmThread.grouped.is_(True),
                AlarmThread.channel == storm.channel,
                AlarmThread.root_ts == storm.root_ts,
            )
            .order_by(AlarmThread.opened_at, AlarmThread.key)
        )
        return [_view(row) for row in rows]


def _storm_of(core: Core, member: AlarmThreadView) -> AlarmThreadView | None:
    with core.db.session(write=False) as session:
        row = session.scalars(
            select(AlarmThread).where(
                AlarmThread.kind == STORM_KIND,
                AlarmThread.channel == member.channel,
                AlarmThread.root_ts == member.root_ts,
            )
        ).first()
        return _view(row) if row is not None else None


# ---------------------------------------------------------------------------------------- posting


def _post(
    core: Core,
    *,
    channel: str,
    result: ChangeResult,
    thread: MessageRef | None = None,
    origin_at: datetime | None = None,
) -> MessageRef:
    try:
        ref = core.notifier.post(channel=channel, result=result, thread=thread, origin_at=origin_at)
    except Exception as exc:  # any failure leaves the inbox row for a retry
        raise PostFailed(type(exc).__name__) from exc
    if ref is None:
        raise PostFailed("the notifier did not post the message")
    return ref


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


def _safe(core: Core, edit: Callable[[], object]) -> None:
    """A root edit is cosmetic once the reply is out: a failure is logged, and the next event
    refreshes it."""
    try:
        edit()
    except Exception as exc:  # noqa: BLE001
        log.warning("alarm_root_update_failed", error=type(exc).__name__)


def _forget(core: Core, view: AlarmThreadView, **cleared: None) -> AlarmThreadView:
    with core.db.session() as session:
        session.execute(
            update(AlarmThread)
            .where(AlarmThread.key == view.key)
            .values(**cleared)
            .execution_options(synchronize_session=False)
        )
    return _replace(view, **cleared)


def _save(core: Core, view: AlarmThreadView) -> None:
    with core.db.session() as session:
        row = session.get(AlarmThread, view.key)
        if row is None:
            session.add(AlarmThread(**_columns(view)))
            return
        row.state, row.since, row.alarm_since = view.state, view.since, view.alarm_since
        row.updated_at, row.flips, row.flap_noted_at = view.updated_at, list(view.flips), view.flap_noted_at
        row.after_deployment = view.after_deployment


# ---------------------------------------------------------------------------------------- messages


def state_emoji(event: Event, state: str | None) -> str:
    if event.kind == "generic":
        return GENERIC_EMOJI
    return STATE_EMOJI.get(state or "", GENERIC_EMOJI)


def root_message(
    view: AlarmThreadView, event: Event, *, snooze_minutes: int, runbook: str | None = None
) -> ChangeResult:
    """The root of the thread, showing the current state of ``view`` (``event`` is the latest
    notification: its reason, metric and links)."""
    if event.kind == "generic":
        return ChangeResult(
            headline=event.title,
            emoji=GENERIC_EMOJI,
            facts=tuple(
                f
                for f in (
                    ("Time", when(event.at)) if event.at else None,
                    ("Region", event.region) if event.region else None,
                )
                if f
            ),
            details=(_code_block(event.text or ""),) if event.text else (),
            footer=_footer(view, event),
        )
    state = view.state or "event"
    headline = f"{state} — {view.title}"
    if view.state == "OK" and view.alarm_since is not None and view.alarm_since <= view.since:
        headline += f" (resolved after {duration(view.alarm_since, view.since)})"
    facts: list[tuple[str, str]] = [("State", state), ("Since", when(view.since))]
    if event.reason:
        facts.append(("Reason", _clip(event.reason)))
    metric = event.metric
    if metric is not None and (metric.name or metric.expression):
        facts.append(("Metric", _clip(_metric_text(event))))
        if metric.threshold is not None:
            facts.append(("Threshold", _threshold_text(metric.comparison, metric.threshold)))
    if event.children:
        facts.append(("Triggered by", _clip(", ".join(event.children))))
    if event.at:
        facts.append(("Time", when(event.at)))
    if event.region:
        facts.append(("Region", event.region))
    if view.env:
        facts.append(("Environment", view.env))
    after = view.after_deployment if view.state == "ALARM" else None
    if after:
        facts.append(("After a deployment", watch.fired_note(after)))
    if view.acknowledged_by:
        facts.append(("Acknowledged", f"<@{view.acknowledged_by}> at {when(view.acknowledged_at)}"))
    if view.snoozed_until is not None and view.snoozed_by:
        facts.append(("Snoozed", f"by <@{view.snoozed_by}> until {when(view.snoozed_until)}"))
    buttons: list[Button] = []
    if event.kind == "alarm" and view.state == "ALARM":
        if not view.acknowledged_by:
            buttons.append(
                Button("Acknowledge", ACK_ACTION, view.short_id, f"ack {view.short_id}", "primary")
            )
        if view.snoozed_until is None:
            label = f"Snooze {minutes_text(snooze_minutes)}"  # what the click does: alarms.snooze_minutes
            buttons.append(Button(label, SNOOZE_ACTION, view.short_id, f"snooze {view.short_id}"))
        if after and after.get("rollback_to") is not None:
            # Back to exactly what ran before the deployment this alarm fired after.
            target = f"{view.env}:{after['rollback_to']}"
            buttons.append(
                Button(
                    "Roll back",
                    REVISION_ROLLBACK_ACTION,
                    target,
                    f"rollback {view.env} {after['rollback_to']}",
                    "danger",
                )
            )
        elif view.env and view.env == PROD and _is_service_alarm(event):
            buttons.append(Button("Roll back", ROLLBACK_ACTION, view.env, f"rollback {view.env}", "danger"))
    if runbook and event.kind == "alarm":
        buttons.append(Button("Runbook", RUNBOOK_ACTION, view.short_id, f"(open {runbook})", url=runbook))
    return ChangeResult(
        headline=headline,
        emoji=state_emoji(event, view.state),
        facts=tuple(facts),
        details=(_clip(event.description),) if event.description else (),
        buttons=tuple(buttons),
        footer=_footer(view, event),
    )


def reply_message(view: AlarmThreadView, event: Event, *, at: datetime) -> ChangeResult:
    """The short reply in the thread for a state change of ``view`` to ``event.state``."""
    new = event.state or "event"
    if view.state == "ALARM" and event.state == "OK":
        headline = f"OK — resolved after {duration(view.since, at)}"
    elif event.state == "ALARM" and view.state in ("OK", "INSUFFICIENT_DATA"):
        headline = "ALARM again" if view.state == "OK" else "ALARM"
    else:
        headline = f"{new} (was {view.state or 'unknown'})"
    return ChangeResult(
        headline=headline,
        emoji=state_emoji(event, event.state),
        details=(_clip(event.reason),) if event.reason else (),
        footer=when(at),
    )


def _is_service_alarm(event: Event) -> bool:
    metric = event.metric
    if metric is None:
        return False
    return metric.namespace in _SERVICE_NAMESPACES or any(
        name in _SERVICE_DIMENSIONS for name, _ in (metric.dimensions or ())
    )


def _root(core: Core, view: AlarmThreadView, event: Event) -> ChangeResult:
    """The thread's root as this bot's configuration draws it (snooze length, runbook link)."""
    return root_message(
        view, event, snooze_minutes=core.config.alarms.snooze_minutes, runbook=_runbook(core, event)
    )


def _runbook(core: Core, event: Event) -> str | None:
    return core.config.alarms.runbook_for(event.title) if event.kind == "alarm" else None


def _metric_text(event: Event) -> str:
    m = event.metric
    assert m is not None
    if m.expression:
        text = f"{m.name or 'expression'} = {m.expression}"
    else:
        text = "/".join(p for p in (m.namespace, m.name) if p)
        if m.dimensions:
            text += " (" + ", ".join(f"{k}={v}" for k, v in m.dimensions) + ")"
    extras = [p for p in (m.statistic, f"{m.period} s" if m.period else None) if p]
    return text + (f" · {' · '.join(extras)}" if extras else "")


_COMPARISONS = {
    "GreaterThanOrEqualToThreshold": "≥",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "≤",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside band",
    "LessThanLowerThreshold": "< lower",
    "GreaterThanUpperThreshold": "> upper",
}


def _threshold_text(comparison: str | None, threshold: float) -> str:
    value = f"{threshold:g}"
    symbol = _COMPARISONS.get(comparison or "")
    return f"{symbol} {value}" if symbol else value


def _footer(view: AlarmThreadView, event: Event) -> str:
    parts = []
    if event.console_url:
        parts.append(f"Console: {event.console_url}")
    if event.account:
        parts.append(f"account {event.account}")
    if event.kind != "generic":
        parts.append(f"thread {view.short_id}")
    return " · ".join(parts) or "AWS notification"


def _code_block(text: str) -> str:
    return "```" + text[:2800].replace("```", "'''") + "```"


def _clip(text: str) -> str:
    return text if len(text) <= _FACT_LIMIT else text[: _FACT_LIMIT - 1] + "…"


# ---------------------------------------------------------------------------------------- queries


def open_alarms(core: Core, env: str | None = None) -> list[AlarmThreadView]:
    """Alarm threads now in ALARM, longest-standing first; only ``env``'s when given."""
    query = select(AlarmThread).where(AlarmThread.kind == "alarm", AlarmThread.state == "ALARM")
    if env is not None:
        query = query.where(AlarmThread.env == env)
    with core.db.session(write=False) as session:
        rows = session.scalars(query.order_by(AlarmThread.since, AlarmThread.key))
        return [_view(row) for row in rows]


def posted_ref(core: Core, ref: MessageRef) -> MessageRef | None:
    """Slack's channel id and ts for a thread root; None while it waits in the outbox."""
    return ref if queued_id(ref.ts) is None else Outbox(core.db, core.clock).resolve(ref)


def thread_for(core: Core, key: str) -> AlarmThreadView | None:
    with core.db.session(write=False) as session:
        row = session.get(AlarmThread, key)
        return _view(row) if row is not None else None


# ---------------------------------------------------------------------------------------- helpers


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


def thread_by_short_id(core: Core, short: str) -> AlarmThreadView:
    with core.db.session(write=False) as session:
        row = session.scalars(
            select(AlarmThread).where(AlarmThread.short_id == short.strip().lower())
        ).first()
        if row is None:
            raise NotFound(f"There is no alarm thread `{short.strip()[:20]}`.")
        return _view(row)


def acknowledge(core: Core, *, short: str, user: str) -> AlarmThreadView:
    """Record who took the alarm, once, and say so in its thread."""
    view = thread_by_short_id(core, short)
    if view.state != "ALARM":
        raise PolicyViolation(
            f"`{view.title}` is {view.state or 'not in ALARM'} now; there is nothing to acknowledge."
        )
    now = core.clock.now()
    with core.db.session() as session:
        taken = (
            rowcount(
                session.execute(
                    update(AlarmThread)
                    .where(AlarmThread.key == view.key, AlarmThread.acknowledged_by.is_(None))
                    .values(acknowledged_by=user, acknowledged_at=now)
                    .execution_options(synchronize_session=False)
                )
            )
            == 1
        )
    if not taken:
        current = thread_by_short_id(core, short)
        raise PolicyViolation(
            f"`{view.title}` was already acknowledged by <@{current.acknowledged_by}> at "
            f"{when(current.acknowledged_at)}."
        )
    try:
        core.notifier.post(
            channel=view.channel,
            thread=view.ref,
            result=ChangeResult(headline=f"Acknowledged by <@{user}> at {when(now)}", emoji=":eyes:"),
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
    with core.db.session() as session:
        session.execute(
            update(AlarmThread)
            .where(AlarmThread.key == view.key)
            .values(snoozed_until=until, snoozed_by=user)
            .execution_options(synchronize_session=False)
        )
    _safe(
        core,
        lambda: core.notifier.post(
            channel=view.channel,
            thread=view.ref,
            result=ChangeResult(
                headline=f"Snoozed by <@{user}> until {when(until)}: reminders and state replies wait until then",
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
    for view in open_alarms(core):
        if view.acknowledged_by is None or view.snoozed(now) or view.acknowledged_at is None:
            continue
        last = max(t for t in (view.acknowledged_at, view.reminded_at, view.snoozed_until) if t is not None)
        if now - last < every:
            continue
        try:
            with core.db.transaction() as session:
                claimed = (
                    rowcount(
                        session.execute(
                            update(AlarmThread)
                            .where(
                                AlarmThread.key == view.key,
                                (AlarmThread.reminded_at.is_(None))
                                | (AlarmThread.reminded_at <= now - every),
                            )
                            .values(reminded_at=now)
                            .execution_options(synchronize_session=False)
                        )
                    )
                    == 1
                )
                if not claimed:
                    continue  # another replica reminded just now
                _post(
                    core,
                    channel=view.channel,
                    thread=view.ref,
                    result=ChangeResult(
                        headline=f"Still in ALARM after {duration(view.alarm_since or view.since, now)} "
                        f"(acknowledged by <@{view.acknowledged_by}> {duration(view.acknowledged_at, now)} ago)",
                        emoji=":alarm_clock:",
                    ),
                )
        except PostFailed:
            break  # rolled back: the next pass reminds
        posted += 1
    return posted
