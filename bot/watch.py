"""The seed's post-deploy watch: "CloudWatch alarms monitored for first 30 minutes".

When a deployment of a watched environment completes (the bot's or one made by CI/CD or in the
console), the environment's alarms are watched for ``watch_minutes``. An alarm that fires in the
window is tied to the deployment: its thread says so ("fired 12 min after `v1.2.4` by @maria") and
its Roll back button goes to the revision before that deployment; the rollout message's thread
links the alarm. A window that ends quietly is said in the same thread.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from bot.answers import ChangeResult
from bot.config import EnvironmentConfig
from bot.events import Event
from bot.notify import MessageRef
from bot.observe import observe_quietly
from bot.render import duration, when
from bot.rich import Mention, Rich
from bot.store.deploys import COMPLETED, FAILED, DeployView

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.watch")

EXTERNAL_ACTOR = "CI/CD or console"
_EVENT_OUTCOMES = {"SERVICE_DEPLOYMENT_COMPLETED": COMPLETED, "SERVICE_DEPLOYMENT_FAILED": FAILED}


def who(record: DeployView) -> str:
    """Who made a change, as a reader wants it: the Slack user (a mention, ``bot.rich``), or the other
    actor."""
    if not record.external:
        return Rich(Mention(record.requested_by))
    if record.kind == "scale":
        return "console, CLI or autoscaler"
    return EXTERNAL_ACTOR


def what(record: DeployView) -> str:
    """What a change did, in a few words: ``v1.2.4 (rev 12)``, ``2 → 3 tasks``."""
    if record.kind == "scale":
        return f"{record.from_count} → {record.to_count} tasks"
    image = f"`{record.image_tag}`" if record.image_tag else "an untagged image"
    return f"{image} (rev {record.to_revision})" if record.to_revision is not None else image


def refresh(core: Core, env: EnvironmentConfig) -> None:
    """Observe ``env`` (best effort) and start the watches its new completed deployments need."""
    observe_quietly(aws=core.aws, deploys=core.stores.deploys, env=env, now=core.clock.now())
    start_due(core, env)


def deployment_event(core: Core, env: EnvironmentConfig, event: Event) -> None:
    """An ECS Deployment State Change: observe the service, then end the event's deployment by
    the event's word if ECS no longer lists it (it completed or failed between two looks)."""
    refresh(core, env)
    detail = event.raw.get("detail") if isinstance(event.raw, dict) else None
    deployment_id = detail.get("deploymentId") if isinstance(detail, dict) else None
    outcome = _EVENT_OUTCOMES.get(str(event.state))
    if not isinstance(deployment_id, str) or outcome is None:
        return
    deploys = core.stores.deploys
    record = deploys.by_deployment_id(deployment_id)
    if record is not None and deploys.settle(
        id=record.id, outcome=outcome, at=event.at or core.clock.now(), detail=event.reason
    ):
        start_due(core, env)


def start_due(core: Core, env: EnvironmentConfig) -> int:
    """Start the watch of each deployment of ``env`` that completed less than ``watch_minutes`` ago
    and has none yet; an external one is announced (the bot posted no rollout message for it)."""
    if env.watch_minutes <= 0:
        return 0
    deploys, now = core.stores.deploys, core.clock.now()
    window = timedelta(minutes=env.watch_minutes)
    started = 0
    for record in deploys.to_watch(env=env.name, since=now - window):
        assert record.finished_at is not None
        deploys.start_watch(id=record.id, until=record.finished_at + window)
        started += 1
        if record.external and record.channel is None:
            ref = core.notifier.post(
                channel=core.config.announce_channel(env),
                result=ChangeResult(
                    headline=f"{what(record)} now runs in {env.name}, deployed by {who(record)} "
                    f"(completed {when(record.finished_at)})",
                    emoji=":package:",
                    footer=f"Watching {env.name}'s alarms until {when(record.finished_at + window)}.",
                ),
            )
            if ref:
                deploys.set_message(id=record.id, channel=ref.channel, ts=ref.ts)
    return started


def deployment_behind(core: Core, *, env: str | None, at: datetime) -> dict[str, Any] | None:
    """The deployment whose watch covers an alarm that fired at ``at``, as kept with its thread."""
    if env is None or env not in core.config.environments:
        return None
    record = core.stores.deploys.watched_at(env=env, at=at)
    if record is None or record.finished_at is None:
        return None
    return {
        "record": record.id,
        "env": env,
        "what": what(record),
        "who": record.requested_by if not record.external else who(record),  # kept as JSON: no markup
        "after": duration(record.finished_at, at),
        "rollback_to": record.from_revision,
    }


def fired_note(after: dict[str, Any]) -> Rich:
    person = str(after["who"])
    if person.startswith("<@") and person.endswith(">"):  # kept by an earlier version, as Slack markup
        person = person[2:-1]
    return Rich(f"fired {after['after']} after {after['what']} by ", Mention(person))


def note_alarm(core: Core, *, after: dict[str, Any], title: str, channel: str) -> None:
    """Say in the rollout message's thread that an alarm fired while it was watched."""
    deploys = core.stores.deploys
    record = deploys.get(int(after["record"]))
    if record is None:
        return
    deploys.set_watch_state(id=record.id, state="alarmed", expect="watching")
    if record.channel and record.message_ts:
        core.notifier.post(
            channel=record.channel,
            thread=MessageRef(record.channel, record.message_ts),
            result=ChangeResult(
                headline=f"`{title}` fired {after['after']} after this deployment; see its thread "
                f"in {channel}",
                emoji=":rotating_light:",
            ),
        )


def end_due(core: Core) -> int:
    """Watches whose window is over: a quiet one says so in the rollout message's thread."""
    deploys, now, ended = core.stores.deploys, core.clock.now(), 0
    for record in deploys.watches_ended(now=now):
        quiet = record.watch_state == "watching"
        if not deploys.set_watch_state(
            id=record.id, state="quiet" if quiet else "over", expect=record.watch_state
        ):
            continue  # another replica ended it
        ended += 1
        if quiet and record.channel and record.message_ts:
            env = core.config.environments.get(record.env)
            minutes = env.watch_minutes if env else 0
            core.notifier.post(
                channel=record.channel,
                thread=MessageRef(record.channel, record.message_ts),
                result=ChangeResult(
                    headline=f"Quiet: no alarm fired in {record.env} in the {minutes} min after "
                    f"{what(record)} completed.",
                    emoji=":white_check_mark:",
                ),
            )
    return ended


def housekeep(core: Core) -> None:
    """Every minute: observe every environment, start and end watches."""
    for env in core.config.environments.values():
        refresh(core, env)
    end_due(core)
