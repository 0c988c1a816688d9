"""Asking for a change: checked, then shown as a plan, run at once, held for the asker's
confirmation click or held for a second person's approval."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot import ecs, guardrails, observe, watch
from bot.answers import ChangeResult
from bot.buttons import CANCEL, CONFIRM
from bot.changes.context import _parts, announce_channel
from bot.changes.execution import execute
from bot.changes.history_checks import _cadence, _check_soak
from bot.changes.messages import _approval_message, _scale_facts, _short_digest
from bot.config import EnvironmentConfig
from bot.dispatch import CommandContext
from bot.errors import BadInput, PolicyViolation
from bot.render import when
from bot.rich import Mention, Rich


def ask_deploy(
    ctx: CommandContext, *, env_name: str, tag: str, reason: str | None, plan: bool, emergency: str | None
) -> ChangeResult:
    core, env, now = ctx.core, ctx.core.config.env(env_name), ctx.core.clock.now()
    parts = _parts(ctx)
    guardrails.tag_allowed(env=env, tag=tag)
    # Records follow ECS, whoever deployed (the soak environment is read, or the deploy refused, below).
    watch.refresh(core, env)
    if emergency and env.change_window is None and env.soak is None:
        raise BadInput(
            f"`--emergency` breaks a change window or a soak, and {env.name} has neither; deploy without it."
        )
    refusals: list[str] = []  # with --plan, what would refuse the deploy is reported, not raised
    guarded = _collect(refusals) if plan else _raise
    guarded(lambda: guardrails.not_frozen(freezes=parts.freezes, env=env, what="deploys"))
    guarded(lambda: guardrails.in_window(env=env, now=now, emergency=emergency))
    snapshot = ecs.service_snapshot(aws=core.aws, env=env)
    if snapshot.image is None:
        raise BadInput(
            f"I cannot tell which image {env.name}'s application container runs; set `app_container` "
            "for it in the configuration."
        )
    image = ecs.find_image(
        aws=core.aws, repository=ecs.repository_of(snapshot.image), tag=tag, suggest_if=env.image_tags.accepts
    )
    guarded(
        lambda: _check_soak(
            ctx, env=env, image=snapshot.image or "", tag=tag, digest=image.digest, emergency=emergency
        )
    )
    change = ecs.plan_revision(
        aws=core.aws,
        env=env,
        base_arn=snapshot.task_definition_arn,
        image=ecs.image_with_tag(snapshot.image, tag, image.digest),
    )
    params = {
        "env": env.name,
        "tag": tag,
        "digest": image.digest,
        "base_arn": snapshot.task_definition_arn,
        "from_revision": snapshot.revision,
        "image": change.to_image,
        "emergency": emergency,
    }
    cadence = _cadence(ctx, env=env)
    if cadence is not None and env.cadence is not None and env.cadence.blocking:
        guarded(lambda: guardrails.within_cadence(env=env, releases=cadence[0], emergency=emergency))
    facts = (
        ("Environment", env.name),
        ("Image", f"`{tag}` ({_short_digest(image.digest)})"),
        ("Task definition", f"`{snapshot.task_definition}` → new revision"),
        ("Currently", f"`{snapshot.image_tag or snapshot.image}`"),
        *((("Releases this week", cadence[1]),) if cadence else ()),
        *((("Emergency", emergency),) if emergency else ()),
    )
    if plan:
        diff = tuple(f"`{d.field}`: `{d.before}` → `{d.after}`" for d in change.differences)
        verdict = tuple(f"Would be refused now: {r}" for r in refusals) or ("Every guardrail passes now.",)
        return ChangeResult(
            headline=f"Plan: deploy `{tag}` to {env.name} (nothing was changed)",
            emoji=":clipboard:",
            facts=facts,
            details=(*verdict, *(diff or ("no change",))),
            public=False,
        )
    if emergency:
        core.notifier.post(
            channel=announce_channel(ctx, env),
            result=ChangeResult(
                headline=Rich(
                    f"EMERGENCY deploy of `{tag}` to {env.name} asked by ",
                    Mention(ctx.user_id),
                    f": {emergency}",
                ),
                emoji=":rotating_light:",
                footer="Break-glass: outside the change window or soak. Listed for review.",
            ),
        )
    if env.deploy_gate == "two_person":
        return _request_approval(ctx, env=env, params=params, reason=reason, facts=facts)
    return _plan_confirm_or_run(
        ctx,
        env=env,
        action="deploy",
        params=params,
        reason=reason,
        facts=facts,
        plan=False,
        what=f"deploy `{tag}` to {env.name}",
    )


def _raise(check: Callable[[], None]) -> None:
    check()


def _collect(into: list[str]) -> Callable[[Callable[[], None]], None]:
    def run(check: Callable[[], None]) -> None:
        try:
            check()
        except PolicyViolation as exc:
            into.append(exc.message)

    return run


def ask_rollback(
    ctx: CommandContext, *, env_name: str, spec: str | None, reason: str | None, plan: bool
) -> ChangeResult:
    core, env = ctx.core, ctx.core.config.env(env_name)
    parts = _parts(ctx)
    # What ran before is whatever ECS ran, whoever deployed it: read it now, or refuse.
    observe.observe_env(aws=core.aws, deploys=parts.deploys, env=env, now=core.clock.now())
    snapshot = ecs.service_snapshot(aws=core.aws, env=env)
    if spec:
        target = ecs.resolve_revision(aws=core.aws, env=env, spec=spec)
    else:
        previous = parts.deploys.previous_live_revision(env.name, snapshot.revision)
        target = ecs.rollback_target(
            aws=core.aws, env=env, current_arn=snapshot.task_definition_arn, previous_from_records=previous
        )
    if target.revision == snapshot.revision:
        raise BadInput(f"{env.name} already runs `{target.label}`; name an earlier revision or version.")
    if snapshot.revision is not None and target.revision > snapshot.revision:
        raise BadInput(
            f"`{target.label}` is newer than what {env.name} runs (`{snapshot.task_definition}`); a "
            "rollback only goes back. Use `deploy` to go forward."
        )
    params = {
        "env": env.name,
        "target_arn": target.arn,
        "to_revision": target.revision,
        "from_revision": snapshot.revision,
        "base_arn": snapshot.task_definition_arn,
        "tag": target.image_tag,
    }
    facts = (
        ("Environment", env.name),
        ("From", f"`{snapshot.task_definition}` (`{snapshot.image_tag or snapshot.image}`)"),
        ("To", f"`{target.label}` (`{target.image_tag or target.image}`)"),
    )
    return _plan_confirm_or_run(
        ctx,
        env=env,
        action="rollback",
        params=params,
        reason=reason,
        facts=facts,
        plan=plan,
        what=f"roll {env.name} back to `{target.label}`",
    )


def ask_scale(ctx: CommandContext, *, env_name: str, count: int, plan: bool) -> ChangeResult:
    core, env = ctx.core, ctx.core.config.env(env_name)
    guardrails.within_bounds(env=env, count=count)
    guardrails.not_frozen(freezes=_parts(ctx).freezes, env=env, what="scaling")
    preview = ecs.scale(aws=core.aws, env=env, count=count, dry_run=True)
    params = {"env": env.name, "count": count}
    facts = _scale_facts(env, preview)
    return _plan_confirm_or_run(
        ctx,
        env=env,
        action="scale",
        params=params,
        reason=None,
        facts=facts,
        plan=plan,
        what=f"scale {env.name} to {count} tasks",
    )


def _plan_confirm_or_run(
    ctx: CommandContext,
    *,
    env: EnvironmentConfig,
    action: str,
    params: dict[str, Any],
    reason: str | None,
    facts: tuple[tuple[str, str], ...],
    plan: bool,
    what: str,
) -> ChangeResult:
    """The end of every ask: show the plan, hold for the asker's click, or run now."""
    if plan:
        return ChangeResult(
            headline=f"Plan: {what} (nothing was changed)", emoji=":clipboard:", facts=facts, public=False
        )
    if action in env.confirm:
        return _request_confirmation(
            ctx, env=env, action=action, params=params, reason=reason, facts=facts, what=what
        )
    return execute(ctx, action=action, params=params, requested_by=ctx.user_id, holder=ctx.request_id)


def _request_confirmation(
    ctx: CommandContext,
    *,
    env: EnvironmentConfig,
    action: str,
    params: dict[str, Any],
    reason: str | None,
    facts: tuple[tuple[str, str], ...],
    what: str,
) -> ChangeResult:
    ttl = timedelta(minutes=ctx.core.config.changes.confirmation_ttl_minutes)
    request = ctx.core.stores.requests.create(
        kind="confirmation",
        env=env.name,
        action=action,
        params=params,
        requested_by=ctx.user_id,
        reason=reason,
        now=ctx.core.clock.now(),
        ttl=ttl,
    )
    return ChangeResult(
        headline=f"Confirm: {what}?",
        emoji=":warning:",
        facts=facts,
        buttons=(
            CONFIRM.button("Confirm", request.id, style="primary"),
            CANCEL.button("Cancel", request.id),
        ),
        footer=f"Request {request.id} · nothing has changed yet · expires {when(request.expires_at)}",
        public=False,
        request_id=request.id,
    )


def _request_approval(
    ctx: CommandContext,
    *,
    env: EnvironmentConfig,
    params: dict[str, Any],
    reason: str | None,
    facts: tuple[tuple[str, str], ...],
) -> ChangeResult:
    core = ctx.core
    ttl = timedelta(minutes=core.config.changes.approval_ttl_minutes)
    request = core.stores.requests.create(
        kind="approval",
        env=env.name,
        action="deploy",
        params=params,
        requested_by=ctx.user_id,
        reason=reason,
        now=core.clock.now(),
        ttl=ttl,
    )
    approvers = ", ".join(r for r in core.policy.roles_allowed("approve", env.name) if r != "admin")
    posted = core.notifier.post(
        channel=announce_channel(ctx, env), result=_approval_message(request, facts, approvers)
    )
    if posted:
        core.stores.requests.set_message(id=request.id, channel=posted.channel, ts=posted.ts)
    return ChangeResult(
        headline=f"Approval requested ({request.id}): deploy `{params['tag']}` to {env.name}",
        emoji=":hourglass_flowing_sand:",
        facts=facts,
        footer=f"Someone else with the role {approvers} must approve it before {when(request.expires_at)}; "
        "nothing has changed yet.",
        public=False,
        request_id=request.id,
    )
