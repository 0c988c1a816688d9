"""Executing a change: every guardrail again, against the parameters recorded when it was asked,
then the change under the environment's lease."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot import ecs, guardrails, observe
from bot.answers import ChangeResult
from bot.changes.context import _parts, announce_channel
from bot.changes.history_checks import _cadence, _check_soak
from bot.changes.messages import _scale_facts, _short_digest
from bot.changes.rollouts import _follow, _link
from bot.config import EnvironmentConfig
from bot.dispatch import CommandContext
from bot.errors import AwsUnavailable, BadInput, PolicyViolation
from bot.rich import Mention, Rich
from bot.store.changes import ChangeRequestView
from bot.store.deploys import FAILED, UNKNOWN, DeployView


def execute(
    ctx: CommandContext,
    *,
    action: str,
    params: dict[str, Any],
    requested_by: str,
    holder: str,
    request: ChangeRequestView | None = None,
) -> ChangeResult:
    # What binds a request to what runs: the digest is looked up again and must be the one asked
    # about, and the service must still run the revision the change was planned from.
    env = ctx.core.config.env(params["env"])
    if action == "deploy":
        return _execute_deploy(
            ctx,
            env=env,
            params=params,
            requested_by=requested_by,
            holder=holder,
            approval=request.decided_by if request and request.kind == "approval" else None,
            request_id=request.id if request else None,
        )
    if action == "rollback":
        return _execute_rollback(ctx, env=env, params=params, requested_by=requested_by, holder=holder)
    if action == "scale":
        return _execute_scale(ctx, env=env, params=params, requested_by=requested_by, holder=holder)
    raise BadInput(f"Unknown change `{action}`.")


def _still_on(snapshot: ecs.ServiceSnapshot, params: dict[str, Any], env: EnvironmentConfig) -> None:
    if snapshot.task_definition_arn != params["base_arn"]:
        raise PolicyViolation(
            f"{env.name} changed since this was asked (it now runs `{snapshot.task_definition}`); "
            "nothing was done. Ask again."
        )


def _family(task_definition_arn: str) -> str:
    return task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def _lease_ttl(ctx: CommandContext) -> timedelta:
    return timedelta(minutes=ctx.core.config.changes.lease_minutes)


def _execute_deploy(
    ctx: CommandContext,
    *,
    env: EnvironmentConfig,
    params: dict[str, Any],
    requested_by: str,
    holder: str,
    approval: str | None,
    request_id: str | None,
) -> ChangeResult:
    core, now, parts = ctx.core, ctx.core.clock.now(), _parts(ctx)
    tag, emergency = params["tag"], params.get("emergency")
    guardrails.not_frozen(freezes=parts.freezes, env=env, what="deploys")
    guardrails.in_window(env=env, now=now, emergency=emergency)
    image = ecs.find_image(aws=core.aws, repository=ecs.repository_of(params["image"]), tag=tag)
    if image.digest != params["digest"]:
        raise PolicyViolation(
            f"`{tag}` now points at a different image ({_short_digest(image.digest)}) than when "
            f"this was asked ({_short_digest(params['digest'])}); nothing was done. Ask again."
        )
    _check_soak(ctx, env=env, image=params["image"], tag=tag, digest=image.digest, emergency=emergency)
    if env.cadence is not None and env.cadence.blocking:
        cadence = _cadence(ctx, env=env)
        guardrails.within_cadence(env=env, releases=cadence[0] if cadence else 0, emergency=emergency)

    def register() -> tuple[str, int, int]:
        change = ecs.register_revision(
            aws=core.aws, env=env, base_arn=params["base_arn"], image=params["image"]
        )
        assert change.to_arn is not None and change.to_revision is not None  # registered: not a dry run
        return change.to_arn, change.from_revision, change.to_revision

    record, arn = _move_service(
        ctx,
        env=env,
        params=params,
        requested_by=requested_by,
        holder=holder,
        kind="deploy",
        register=register,
        image_tag=tag,
        image_digest=image.digest,
        request_id=request_id,
        approval_id=request_id if approval else None,
        emergency_reason=emergency,
    )
    family = _family(params["base_arn"])
    approved = (", approved by ", Mention(approval)) if approval else ()
    headline = Rich(
        f"Deploying `{tag}` to {env.name}: `{family}:{record.from_revision}` → "
        f"`{family}:{record.to_revision}` (asked by ",
        Mention(requested_by),
        *approved,
        ")",
    )
    _follow(ctx, env=env, record=record, holder=holder, arn=arn, headline=headline)
    return ChangeResult(
        headline=headline,
        emoji=":rocket:",
        facts=(
            ("Image", f"`{tag}` ({_short_digest(image.digest)})"),
            ("Rollout", f"followed in {announce_channel(ctx, env)}"),
        ),
    )


def _execute_rollback(
    ctx: CommandContext, *, env: EnvironmentConfig, params: dict[str, Any], requested_by: str, holder: str
) -> ChangeResult:
    record, arn = _move_service(
        ctx,
        env=env,
        params=params,
        requested_by=requested_by,
        holder=holder,
        kind="rollback",
        register=lambda: (params["target_arn"], params["from_revision"], params["to_revision"]),
        image_tag=params["tag"],
        image_digest=None,
        request_id=holder,
        approval_id=None,
        emergency_reason=None,
    )
    family = _family(params["target_arn"])
    headline = Rich(
        f"Rolling {env.name} back: `{family}:{params['from_revision']}` → `{family}:{params['to_revision']}` "
        "(asked by ",
        Mention(requested_by),
        ")",
    )
    _follow(ctx, env=env, record=record, holder=holder, arn=arn, headline=headline)
    return ChangeResult(
        headline=headline, emoji=":rewind:", facts=(("Rollout", f"followed in {announce_channel(ctx, env)}"),)
    )


def _move_service(
    ctx: CommandContext,
    *,
    env: EnvironmentConfig,
    params: dict[str, Any],
    requested_by: str,
    holder: str,
    kind: str,
    register: Callable[[], tuple[str, int, int]],
    image_tag: str | None,
    image_digest: str | None,
    request_id: str | None,
    approval_id: str | None,
    emergency_reason: str | None,
) -> tuple[DeployView, str]:
    """Take the environment's lease, check it still runs what was asked about, point the service at
    the new revision and record it. Any failure releases the lease; a failure after the record is
    written ends the record as failed, so no change is ever reported that did not happen."""
    core, now, parts = ctx.core, ctx.core.clock.now(), _parts(ctx)
    # "Rollback any time": an incident rollback takes the lock from a deploy still rolling out.
    parts.leases.acquire(
        env=env.name,
        holder=holder,
        action=kind,
        user=requested_by,
        now=now,
        ttl=_lease_ttl(ctx),
        preempt=("deploy",) if kind == "rollback" else (),
    )
    try:
        _still_on(ecs.service_snapshot(aws=core.aws, env=env), params, env)
        arn, from_revision, to_revision = register()
        record = parts.deploys.start(
            env=env.name,
            kind=kind,
            requested_by=requested_by,
            image_tag=image_tag,
            image_digest=image_digest,
            from_revision=from_revision,
            to_revision=to_revision,
            at=now,
            request_id=request_id or ctx.request_id,
            approval_id=approval_id,
            emergency_reason=emergency_reason,
        )
        try:
            deployment_id = ecs.update_service(aws=core.aws, env=env, task_definition_arn=arn)
        except AwsUnavailable as exc:
            # No answer is not a no: ECS may have taken the update. Say so, and record it as unknown.
            parts.deploys.finish(id=record.id, outcome=UNKNOWN, at=core.clock.now(), detail=exc.message)
            raise AwsUnavailable(
                f"AWS did not answer while {env.name}'s service was being updated, so the {kind} "
                f"may or may not have started; check `/menotime status {env.name}` before "
                "trying again."
            ) from exc
        except Exception as exc:
            parts.deploys.finish(
                id=record.id,
                outcome=FAILED,
                at=core.clock.now(),
                detail=getattr(exc, "message", type(exc).__name__),
            )
            raise
        if deployment_id:
            _link(core, record, deployment_id)
    except Exception:
        parts.leases.release(env=env.name, holder=holder)
        raise
    return record, arn


def _execute_scale(
    ctx: CommandContext, *, env: EnvironmentConfig, params: dict[str, Any], requested_by: str, holder: str
) -> ChangeResult:
    core, now, parts = ctx.core, ctx.core.clock.now(), _parts(ctx)
    count = int(params["count"])
    guardrails.within_bounds(env=env, count=count)
    guardrails.not_frozen(freezes=parts.freezes, env=env, what="scaling")
    with parts.leases.held(
        env=env.name, holder=holder, action="scale", user=requested_by, now=now, ttl=_lease_ttl(ctx)
    ):
        change = ecs.scale(aws=core.aws, env=env, count=count)
        observe.bot_scaled(
            parts.deploys,
            env=env.name,
            requested_by=requested_by,
            before=change.desired_before,
            after=change.desired_after,
            at=now,
            request_id=holder,
        )
    if change.autoscaled and change.desired_after != count:
        headline = Rich(
            f"{env.name}'s autoscaling minimum is now {count} (asked by ",
            Mention(requested_by),
            f"); {change.desired_after} tasks run until the autoscaler brings them down",
        )
    else:
        headline = Rich(f"Scaled {env.name} to {count} tasks (asked by ", Mention(requested_by), ")")
    result = ChangeResult(headline=headline, emoji=":straight_ruler:", facts=_scale_facts(env, change))
    if "scale" in env.confirm:
        core.notifier.post(channel=announce_channel(ctx, env), result=result)
    return result
