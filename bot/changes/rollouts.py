"""Following a rollout: one message, edited in place, until it ends; and the rollouts nobody
follows any more, ended from what ECS shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from bot import ecs, watch
from bot.answers import Button, ChangeResult
from bot.buttons import ROLLBACK_TO
from bot.changes.context import announce_channel
from bot.config import EnvironmentConfig
from bot.dispatch import CommandContext
from bot.notify import MessageRef
from bot.render import when
from bot.store.deploys import COMPLETED, FAILED, ROLLED_BACK, TIMED_OUT, UNKNOWN, DeployView

log = structlog.get_logger("menotime.changes")

_OUTCOME = {"COMPLETED": COMPLETED, "FAILED": FAILED, "TIMED_OUT": TIMED_OUT}


def _link(core: Any, record: DeployView, deployment_id: str) -> None:
    """Tie the bot's record to its ECS deployment, so the observer never takes it for another's."""
    try:
        core.stores.deploys.link(id=record.id, deployment_id=deployment_id, digest=None, commit=None)
    except IntegrityError:
        log.info("deployment_already_observed", record=record.id, deployment=deployment_id)


def _follow(
    ctx: CommandContext, *, env: EnvironmentConfig, record: DeployView, holder: str, arn: str, headline: str
) -> None:
    core = ctx.core
    try:
        ref = core.notifier.post(
            channel=announce_channel(ctx, env), result=_rollout_message(headline, None, record, env)
        )
        if ref:
            core.db.retrying(
                lambda: core.stores.deploys.set_message(id=record.id, channel=ref.channel, ts=ref.ts),
                what="rollout_message_ref",
            )
        core.run_background(
            lambda: _track(core, env=env, record=record, holder=holder, arn=arn, headline=headline, ref=ref)
        )
    except Exception:
        # The service has moved: never leave its record open or its lock held because a post failed.
        _end_rollout(
            core,
            env=env,
            record=record,
            holder=holder,
            outcome=UNKNOWN,
            detail="the bot could not start following the rollout",
            final=False,
        )
        raise


def _track(
    core: Any,
    *,
    env: EnvironmentConfig,
    record: DeployView,
    holder: str,
    arn: str,
    headline: str,
    ref: MessageRef | None,
) -> None:
    """Follow the rollout in ECS until it ends, then end its record, release the lease and post the
    outcome. The database may be gone for a while meanwhile: ECS is polled whatever it does,
    renewing the lease and editing the message are tried again at every poll, and the final writes
    are retried (:meth:`Database.retrying`) until they succeed or the retry policy's final bound."""
    leases, ttl = core.stores.leases, timedelta(minutes=core.config.changes.lease_minutes)
    unsent: list[ecs.RolloutSnapshot] = []  # the newest state the message could not be edited to

    def wait(seconds: float) -> None:
        core.sleep(seconds)
        # Still ours? Renew it. Taken (an incident rollback preempted this deploy)? Keep following;
        # ECS will say the deployment was replaced.
        _meanwhile(
            lambda: leases.renew(env=env.name, holder=holder, now=core.clock.now(), ttl=ttl),
            what="change_lease_renewal",
            record=record,
        )

    def changed(snap: ecs.RolloutSnapshot) -> None:
        if ref:
            unsent[:] = [snap]
            if _meanwhile(
                lambda: core.notifier.update(ref=ref, result=_rollout_message(headline, snap, record, env)),
                what="rollout_message_edit",
                record=record,
            ):
                unsent.clear()

    final_state, detail, deployment_id = UNKNOWN, None, None
    try:
        final = ecs.follow_rollout(
            aws=core.aws,
            env=env,
            task_definition_arn=arn,
            on_change=changed,
            sleep=wait,
            now=core.clock.now,
            interval=core.config.changes.rollout_poll_seconds,
            timeout=timedelta(minutes=core.config.changes.rollout_timeout_minutes),
        )
        final_state = ROLLED_BACK if final.rolled_back else _OUTCOME.get(final.state, FAILED)
        detail, deployment_id = final.reason, final.deployment_id
    except Exception as exc:
        log.exception("rollout_tracking_failed", env=env.name, record=record.id)
        detail = f"tracking stopped: {getattr(exc, 'message', type(exc).__name__)}"
    _end_rollout(core, env=env, record=record, holder=holder, outcome=final_state, detail=detail)
    if ref and unsent:
        # The outcome must reach the channel: the edit the database did not take, now it is back.
        _finally_write(
            core,
            lambda: core.notifier.update(ref=ref, result=_rollout_message(headline, unsent[0], record, env)),
            what="rollout_outcome_post",
            record=record,
        )
    # The record is ended; a watch not started here starts at the next housekeeping.
    if deployment_id:
        _finally_write(
            core, lambda: _link(core, record, deployment_id), what="rollout_link", record=record, final=False
        )
    if final_state == COMPLETED:
        _finally_write(
            core, lambda: watch.start_due(core, env), what="post_deploy_watch", record=record, final=False
        )


def _meanwhile(work: Callable[[], Any], *, what: str, record: DeployView) -> bool:
    """A write while a rollout is followed (renewing its lease, editing its message): tried once
    per poll, so a database outage never stops ECS from being followed. True when it went through."""
    try:
        work()
    except Exception as exc:  # noqa: BLE001 - tried again at the next poll; the rollout is still followed
        log.warning("rollout_write_deferred", what=what, record=record.id, error=type(exc).__name__)
        return False
    return True


def _finally_write(
    core: Any, work: Callable[[], Any], *, what: str, record: DeployView, final: bool = True
) -> bool:
    """A write that ends a rollout, retried through a database outage; logged when it still fails."""
    try:
        core.db.retrying(work, what=what, final=final)
    except Exception:
        log.exception("rollout_write_failed", what=what, record=record.id)
        return False
    return True


def _end_rollout(
    core: Any,
    *,
    env: EnvironmentConfig,
    record: DeployView,
    holder: str,
    outcome: str,
    detail: str | None,
    final: bool = True,
) -> None:
    """End the rollout's record and release the environment's lease, each retried on its own: a
    record the database never took is ended by :func:`finish_orphaned_rollouts` at the next
    housekeeping once no lease stands behind it."""
    at = core.clock.now()
    _finally_write(
        core,
        lambda: core.stores.deploys.finish(id=record.id, outcome=outcome, at=at, detail=detail),
        what="rollout_record_end",
        record=record,
        final=final,
    )
    _finally_write(
        core,
        lambda: core.stores.leases.release(env=env.name, holder=holder),
        what="change_lease_release",
        record=record,
        final=final,
    )


def finish_orphaned_rollouts(core: Any, *, why: str = "after a restart of the bot") -> int:
    """The bot's rollouts nobody follows any more — the bot stopped while following them (at
    start-up), or its follower died or gave up on the database and the lease it kept renewing
    expired (every housekeeping round) — ended from what ECS shows now, so status, the soak and
    the next change stay truthful. A record whose environment holds a live lease is left alone:
    its follower may still be at work. The expired lease goes with it. The number ended."""
    leases, deploys, ended = core.stores.leases, core.stores.deploys, 0
    now = core.clock.now()
    for record in deploys.unfinished():
        lease = leases.get(record.env, now=now)
        if lease is not None or record.env not in core.config.environments:
            continue
        try:
            snapshot = ecs.service_snapshot(aws=core.aws, env=core.config.env(record.env))
        except Exception as exc:  # noqa: BLE001 - AWS down: try again at the next round
            log.warning("orphaned_rollout_unchecked", record=record.id, error=type(exc).__name__)
            continue
        done = snapshot.revision == record.to_revision and snapshot.rollout_state == "COMPLETED"
        outcome = COMPLETED if done else UNKNOWN
        if deploys.settle(
            id=record.id,
            outcome=outcome,
            at=now,
            detail=f"ended {why}: "
            + (
                "ECS shows it completed"
                if done
                else f"ECS shows {snapshot.task_definition} {(snapshot.rollout_state or '').lower()}"
            ),
        ):
            ended += 1
            log.warning("orphaned_rollout_ended", record=record.id, env=record.env, outcome=outcome)
        leases.drop_expired(env=record.env, now=now)
    return ended


def _rollout_message(
    headline: str, snap: ecs.RolloutSnapshot | None, record: DeployView, env: EnvironmentConfig
) -> ChangeResult:
    if snap is None:
        return ChangeResult(
            headline=headline, emoji=":hourglass_flowing_sand:", facts=(("Rollout", "starting"),)
        )
    state = "ROLLED BACK by ECS (circuit breaker)" if snap.rolled_back else snap.state.replace("_", " ")
    emoji = {"COMPLETED": ":white_check_mark:", "IN_PROGRESS": ":hourglass_flowing_sand:"}.get(
        snap.state, ":x:"
    )
    facts = (
        ("Rollout", state),
        ("Tasks", f"{snap.running} running · {snap.desired} desired · {snap.pending} pending"),
    )
    details = tuple(f"{when(e.at)} · {e.message}" for e in snap.events[:3])
    if snap.reason and snap.state != "COMPLETED":
        details = (snap.reason, *details)
    if snap.state == "COMPLETED" and env.watch_minutes:
        details = (
            f"Watching {env.name}'s alarms for {env.watch_minutes} min; an alarm that fires is linked here.",
            *details,
        )
    buttons: tuple[Button, ...] = ()
    if snap.state in ("FAILED", "TIMED_OUT") and not snap.rolled_back and record.from_revision is not None:
        # Back to exactly what ran before this change; when ECS already rolled back there is nothing to do.
        buttons = (ROLLBACK_TO.button("Roll back", f"{env.name}:{record.from_revision}", style="danger"),)
    return ChangeResult(
        headline=headline,
        emoji=emoji if not snap.rolled_back else ":leftwards_arrow_with_hook:",
        facts=facts,
        details=details,
        buttons=buttons,
    )
