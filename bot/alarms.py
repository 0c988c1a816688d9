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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select, update

from bot.errors import NotFound, PolicyViolation
from bot.events import Event, parse_message, route
from bot.notify import MessageRef
from bot.render import when
from bot.results import Button, ChangeResult
from bot.store.db import stored_utc
from bot.store.inbox import Inbox
from bot.store.models import AlarmThread

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.alarms")

STATE_EMOJI = {"ALARM": ":red_circle:", "OK": ":large_green_circle:", "INSUFFICIENT_DATA": ":white_circle:"}
GENERIC_EMOJI = ":information_source:"
ACK_ACTION = "menotime_ack"
# Inbox outcomes.
POSTED, THREADED, REFRESHED, STALE = "posted", "threaded", "refreshed", "stale"
_FACT_LIMIT = 600


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
    for row in inbox.pending(limit=limit):
        subject, message = _envelope(row.body, row.subject)
        event = parse_message(subject, message)
        env, channel = route(event, core.config, topic_arn=row.topic_arn)
        try:
            outcome = record_event(core, event, env, channel)
        except PostFailed as exc:
            log.warning("alarm_post_failed", inbox_id=row.id, key=event.key, channel=channel, error=str(exc))
            break  # later messages wait too: they may belong to the same thread, and order matters
        inbox.mark(id=row.id, outcome=outcome, processed_at=core.clock.now())
        done += 1
    return done


def _envelope(body: str, subject: str | None) -> tuple[str | None, str]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return subject, body
    if not isinstance(data, dict):
        return subject, body
    message = data.get("Message")
    return (data.get("Subject") if data.get("Subject") is not None else subject,
            message if isinstance(message, str) else json.dumps(message))


# ---------------------------------------------------------------------------------------- record


def record_event(core: Core, event: Event, env: str | None, channel: str) -> str:
    """Posts ``event`` (a new thread, a reply, or a root refresh); the inbox outcome. Raises
    PostFailed when Slack did not take the message, with nothing recorded."""
    now = core.clock.now()
    at = _aware(event.at) if event.at else now
    if event.kind == "generic":
        return _post_root(core, event, env, channel, at=at, now=now, replace=True)
    with core.db.session(write=False) as session:
        thread = session.get(AlarmThread, event.key)
    if thread is None:
        return _post_root(core, event, env, channel, at=at, now=now, replace=False)

    view = _view(thread)
    if at < view.since:
        # An older notification delivered late: the thread already shows something newer.
        return STALE
    if event.state == view.state:
        refreshed = _replace(view, updated_at=now)
        _safe_update(core, refreshed, event)
        _save(core, refreshed)
        return REFRESHED
    reply = reply_message(view, event, at=at)
    _post(core, channel=view.channel, result=reply, thread=view.ref)
    changed = _replace(view, state=event.state, since=at, updated_at=now,
                       alarm_since=at if event.state == "ALARM" else view.alarm_since)
    _save(core, changed)
    _safe_update(core, changed, event)
    return THREADED


def _post_root(core: Core, event: Event, env: str | None, channel: str, *, at: datetime, now: datetime,
               replace: bool) -> str:
    draft = AlarmThreadView(
        key=event.key, short_id=short_id(event.key), env=env, channel=channel, root_ts="", title=event.title[:300],
        kind=event.kind, state=event.state, since=at, alarm_since=at if event.state == "ALARM" else None,
        opened_at=now, updated_at=now,
        acknowledged_by=None, acknowledged_at=None,
    )
    ref = _post(core, channel=channel, result=root_message(draft, event))
    view = _replace(draft, channel=ref.channel, root_ts=ref.ts)
    with core.db.session() as session:
        existing = session.get(AlarmThread, view.key) if replace else None
        if existing is None:
            session.add(AlarmThread(**_columns(view)))
        else:  # a generic message seen before: the newest post is the one to follow
            for name, value in _columns(view).items():
                setattr(existing, name, value)
    return POSTED


def _post(core: Core, *, channel: str, result: ChangeResult, thread: MessageRef | None = None) -> MessageRef:
    try:
        ref = core.notifier.post(channel=channel, result=result, thread=thread)
    except Exception as exc:  # any failure leaves the inbox row for a retry
        raise PostFailed(type(exc).__name__) from exc
    if ref is None:
        raise PostFailed("the notifier did not post the message")
    return ref


def _safe_update(core: Core, view: AlarmThreadView, event: Event) -> None:
    """The root edit is cosmetic once the reply is out: a failure is logged, and the next event
    refreshes it."""
    try:
        core.notifier.update(ref=view.ref, result=root_message(view, event))
    except Exception as exc:  # noqa: BLE001
        log.warning("alarm_root_update_failed", key=view.key, error=type(exc).__name__)


def _save(core: Core, view: AlarmThreadView) -> None:
    with core.db.session() as session:
        row = session.get(AlarmThread, view.key)
        if row is None:
            session.add(AlarmThread(**_columns(view)))
            return
        row.state, row.since, row.alarm_since = view.state, view.since, view.alarm_since
        row.updated_at = view.updated_at


# ---------------------------------------------------------------------------------------- messages


def state_emoji(event: Event, state: str | None) -> str:
    if event.kind == "generic":
        return GENERIC_EMOJI
    return STATE_EMOJI.get(state or "", GENERIC_EMOJI)


def root_message(view: AlarmThreadView, event: Event) -> ChangeResult:
    """The root of the thread, showing the current state of ``view`` (``event`` is the latest
    notification: its reason, metric and links)."""
    if event.kind == "generic":
        return ChangeResult(
            headline=event.title, emoji=GENERIC_EMOJI,
            facts=tuple(f for f in (("Time", when(event.at)) if event.at else None,
                                    ("Region", event.region) if event.region else None) if f),
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
    if view.acknowledged_by:
        facts.append(("Acknowledged", f"<@{view.acknowledged_by}> at {when(view.acknowledged_at)}"))
    buttons: tuple[Button, ...] = ()
    if event.kind == "alarm" and not view.acknowledged_by:
        buttons = (Button("Acknowledge", ACK_ACTION, view.short_id, f"ack {view.short_id}", "primary"),)
    return ChangeResult(
        headline=headline, emoji=state_emoji(event, view.state), facts=tuple(facts),
        details=(_clip(event.description),) if event.description else (),
        buttons=buttons, footer=_footer(view, event),
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
        headline=headline, emoji=state_emoji(event, event.state),
        details=(_clip(event.reason),) if event.reason else (),
        footer=when(at),
    )


def duration(start: datetime, end: datetime) -> str:
    """``17 min``, ``2 h 5 min``, ``45 s``."""
    seconds = max(0, int((_aware(end) - _aware(start)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


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
    "GreaterThanOrEqualToThreshold": "≥", "GreaterThanThreshold": ">", "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "≤", "LessThanLowerOrGreaterThanUpperThreshold": "outside band",
    "LessThanLowerThreshold": "< lower", "GreaterThanUpperThreshold": "> upper",
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
        key=row.key, short_id=row.short_id, env=row.env, channel=row.channel, root_ts=row.root_ts,
        title=row.title, kind=row.kind, state=row.state, since=_aware(row.since),
        alarm_since=_aware(row.alarm_since) if row.alarm_since else None,
        opened_at=_aware(row.opened_at), updated_at=_aware(row.updated_at), acknowledged_by=row.acknowledged_by,
        acknowledged_at=_aware(row.acknowledged_at) if row.acknowledged_at else None,
    )


def _replace(view: AlarmThreadView, **changes: object) -> AlarmThreadView:
    return replace(view, **changes)  # type: ignore[arg-type]


def _columns(view: AlarmThreadView) -> dict[str, object]:
    return {name: getattr(view, name) for name in AlarmThreadView.__dataclass_fields__}


def thread_by_short_id(core: Core, short: str) -> AlarmThreadView:
    with core.db.session(write=False) as session:
        row = session.scalars(select(AlarmThread).where(AlarmThread.short_id == short.strip().lower())).first()
        if row is None:
            raise NotFound(f"There is no alarm thread `{short.strip()[:20]}`.")
        return _view(row)


def acknowledge(core: Core, *, short: str, user: str) -> AlarmThreadView:
    """Record who took the alarm, once, and say so in its thread."""
    view = thread_by_short_id(core, short)
    if view.state != "ALARM":
        raise PolicyViolation(f"`{view.title}` is {view.state or 'not in ALARM'} now; there is nothing to acknowledge.")
    now = core.clock.now()
    with core.db.session() as session:
        taken = session.execute(
            update(AlarmThread).where(AlarmThread.key == view.key, AlarmThread.acknowledged_by.is_(None))
            .values(acknowledged_by=user, acknowledged_at=now).execution_options(synchronize_session=False)
        ).rowcount == 1
    if not taken:
        current = thread_by_short_id(core, short)
        raise PolicyViolation(f"`{view.title}` was already acknowledged by <@{current.acknowledged_by}> at "
                              f"{when(current.acknowledged_at)}.")
    try:
        core.notifier.post(channel=view.channel, thread=view.ref, result=ChangeResult(
            headline=f"Acknowledged by <@{user}> at {when(now)}", emoji=":eyes:"))
    except Exception as exc:  # noqa: BLE001 - the acknowledgement is recorded; the reply is a courtesy
        log.warning("alarm_ack_reply_failed", key=view.key, error=type(exc).__name__)
    return _replace(view, acknowledged_by=user, acknowledged_at=now)
