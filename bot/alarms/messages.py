"""What an alarm thread says: its root (the current state, the facts of the latest notification,
the buttons for what can be done about it) and the short reply for each state change."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot import watch
from bot.answers import Button, ChangeResult
from bot.buttons import ACKNOWLEDGE, ROLLBACK_ENV, ROLLBACK_TO, SNOOZE, runbook_button
from bot.events import Event
from bot.render import duration, minutes_text, when
from bot.rich import Mention, Rich
from bot.store.alarm_threads import AlarmThreadView

if TYPE_CHECKING:
    from bot.core import Core

STATE_EMOJI = {"ALARM": ":red_circle:", "OK": ":large_green_circle:", "INSUFFICIENT_DATA": ":white_circle:"}
GENERIC_EMOJI = ":information_source:"
# A service alarm is one about what a rollback would change: the ECS service or the load balancer
# in front of it (5xx, latency, unhealthy targets), not the database or the account.
_SERVICE_NAMESPACES = frozenset({"AWS/ECS", "ECS/ContainerInsights", "AWS/ApplicationELB"})
_SERVICE_DIMENSIONS = frozenset({"ServiceName", "TargetGroup", "LoadBalancer"})
_FACT_LIMIT = 600


def state_emoji(event: Event, state: str | None) -> str:
    if event.kind == "generic":
        return GENERIC_EMOJI
    return STATE_EMOJI.get(state or "", GENERIC_EMOJI)


def root_message(
    view: AlarmThreadView,
    event: Event,
    *,
    snooze_minutes: int,
    runbook: str | None = None,
    incident_rollback: bool = False,
) -> ChangeResult:
    """The root of the thread, showing the current state of ``view`` (``event`` is the latest
    notification: its reason, metric and links). ``incident_rollback``: the alarm's environment
    rolls back as an incident response (config ``rollback: incident``), so a service alarm offers a
    rollback even when no deployment is tied to it."""
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
        facts.append(
            ("Acknowledged", Rich(Mention(view.acknowledged_by), f" at {when(view.acknowledged_at)}"))
        )
    if view.snoozed_until is not None and view.snoozed_by:
        facts.append(("Snoozed", Rich("by ", Mention(view.snoozed_by), f" until {when(view.snoozed_until)}")))
    buttons: list[Button] = []
    if event.kind == "alarm" and view.state == "ALARM":
        if not view.acknowledged_by:
            buttons.append(ACKNOWLEDGE.button("Acknowledge", view.short_id, style="primary"))
        if view.snoozed_until is None:
            label = f"Snooze {minutes_text(snooze_minutes)}"  # what the click does: alarms.snooze_minutes
            buttons.append(SNOOZE.button(label, view.short_id))
        if after and after.get("rollback_to") is not None:
            # Back to exactly what ran before the deployment this alarm fired after.
            buttons.append(
                ROLLBACK_TO.button("Roll back", f"{view.env}:{after['rollback_to']}", style="danger")
            )
        elif view.env and incident_rollback and _is_service_alarm(event):
            buttons.append(ROLLBACK_ENV.button("Roll back", view.env, style="danger"))
    if runbook and event.kind == "alarm":
        buttons.append(runbook_button(view.short_id, runbook))
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
    env = core.config.environments.get(view.env or "")
    return root_message(
        view,
        event,
        snooze_minutes=core.config.alarms.snooze_minutes,
        runbook=_runbook(core, event),
        incident_rollback=env is not None and env.rollback == "incident",
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
