"""Guarded changes: deploy, rollback and scale, with confirmations, approvals, locks and rollouts.

A change is asked for, checked (tag rule, lock, window, soak, bounds), then — depending on the
environment — run at once, held for a confirmation click by the person who asked, or held for a
second person's approval. Whatever held it, the same checks run again when it executes, against
the parameters recorded when it was asked: the tag must still resolve to the digest that was
approved and the service must still run the revision the change was planned from, so a stale
"yes" cannot slip through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from botocore.exceptions import ClientError
from sqlalchemy.exc import IntegrityError

from bot import ecs, guardrails, observe, watch
from bot.alarms import open_alarms
from bot.config import EnvironmentConfig
from bot.errors import AwsUnavailable, BadInput, BotError, PolicyViolation
from bot.notify import MessageRef
from bot.render import when
from bot.results import Button, ChangeResult
from bot.service import CommandContext
from bot.store.audit import BOT_ACTOR
from bot.store.changes import ChangeRequestView, Freezes, Leases, Requests
from bot.store.deploys import COMPLETED, FAILED, ROLLED_BACK, TIMED_OUT, UNKNOWN, DeployLog, DeployView

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.changes")

_OUTCOME = {"COMPLETED": COMPLETED, "FAILED": FAILED, "TIMED_OUT": TIMED_OUT}


def _short_digest(digest: str | None) -> str:
    return (digest or "").removeprefix("sha256:")[:12]


def announce_channel(ctx: CommandContext, env: EnvironmentConfig) -> str:
    return ctx.core.config.announce_channel(env)


@dataclass(frozen=True)
class _Parts:
    freezes: Freezes
    leases: Leases
    requests: Requests
    deploys: DeployLog


def _parts(ctx: CommandContext) -> _Parts:
    db = ctx.core.db
    return _Parts(Freezes(db), Leases(db), Requests(db), DeployLog(db))


# --------------------------------------------------------------------------------------------
# Asking


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
                headline=f"EMERGENCY deploy of `{tag}` to {env.name} asked by <@{ctx.user_id}>: {emergency}",
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


def _check_soak(
    ctx: CommandContext, *, env: EnvironmentConfig, image: str, tag: str, digest: str, emergency: str | None
) -> None:
    """The soak, from what the soak environment ran (observed from ECS, whoever deployed it)."""
    if env.soak is None or emergency:
        return
    core = ctx.core
    soak_env = core.config.env(env.soak.env)
    try:
        evidence = observe.soak_evidence(
            aws=core.aws,
            deploys=DeployLog(core.db),
            soak_env=soak_env,
            image=image,
            tag=tag,
            digest=digest,
            now=core.clock.now(),
        )
    except (BotError, ClientError) as exc:
        what = getattr(exc, "message", None) or f"AWS answered {type(exc).__name__}"
        raise PolicyViolation(
            f"The {soak_env.name} soak could not be checked ({what.rstrip('.')}); nothing was "
            "changed. Try again in a minute."
        ) from None
    guardrails.soaked(
        env=env, evidence=evidence, tag=tag, digest=digest, now=core.clock.now(), emergency=emergency
    )


def _cadence(ctx: CommandContext, *, env: EnvironmentConfig) -> tuple[int, str] | None:
    """Releases in ``env`` this week (Monday 00:00 in the window's time zone) against the plan."""
    if env.cadence is None:
        return None
    zone = ZoneInfo(env.change_window.timezone if env.change_window else ctx.core.config.jobs.timezone)
    local = ctx.core.clock.now().astimezone(zone)
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    releases = len(DeployLog(ctx.core.db).releases_since(env=env.name, since=monday))
    planned = env.cadence.per_week
    text = f"{releases} of {planned} planned (since Mon {monday:%-d %b})"
    if releases >= planned:
        text += "; this one is over the plan" + (" and refused" if env.cadence.blocking else "")
    return releases, text


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


def _scale_facts(env: EnvironmentConfig, change: ecs.ScaleChange) -> tuple[tuple[str, str], ...]:
    facts = [
        ("Environment", env.name),
        ("Desired tasks", f"{change.desired_before} → {change.desired_after}"),
    ]
    if change.autoscaled:
        facts.append(
            (
                "Autoscaling bounds",
                f"{change.min_before}–{change.max_before} → {change.min_after}–{change.max_after}",
            )
        )
    return tuple(facts)


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
    request = Requests(ctx.core.db).create(
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
            Button("Confirm", "menotime_confirm", request.id, f"confirm {request.id}", "primary"),
            Button("Cancel", "menotime_cancel", request.id, f"cancel {request.id}"),
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
    request = Requests(core.db).create(
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
        Requests(core.db).set_message(id=request.id, channel=posted.channel, ts=posted.ts)
    return ChangeResult(
        headline=f"Approval requested ({request.id}): deploy `{params['tag']}` to {env.name}",
        emoji=":hourglass_flowing_sand:",
        facts=facts,
        footer=f"Someone else with the role {approvers} must approve it before {when(request.expires_at)}; "
        "nothing has changed yet.",
        public=False,
        request_id=request.id,
    )


def _approval_message(
    request: ChangeRequestView,
    facts: tuple[tuple[str, str], ...],
    approvers: str,
    decided: str | None = None,
    emoji: str = ":lock:",
) -> ChangeResult:
    params = request.params
    buttons = (
        ()
        if decided
        else (
            Button("Approve", "menotime_approve", request.id, f"approve {request.id}", "primary"),
            Button("Deny", "menotime_deny", request.id, f"deny {request.id}", "danger"),
        )
    )
    return ChangeResult(
        headline=decided
        or (f"<@{request.requested_by}> asks to deploy `{params['tag']}` to {request.env} ({request.id})"),
        emoji=emoji,
        facts=(*facts, ("Reason", request.reason or "—")),
        buttons=buttons,
        footer=None
        if decided
        else f"Needs {approvers}, not the requester · expires {when(request.expires_at)}",
    )


def _request_facts(request: ChangeRequestView) -> tuple[tuple[str, str], ...]:
    params = request.params
    facts = [
        ("Environment", request.env),
        ("Image", f"`{params['tag']}` ({_short_digest(params.get('digest'))})"),
    ]
    if params.get("emergency"):
        facts.append(("Emergency", params["emergency"]))
    return tuple(facts)


# --------------------------------------------------------------------------------------------
# Deciding


def confirm(ctx: CommandContext, *, request_id: str) -> ChangeResult:
    requests = Requests(ctx.core.db)
    request = requests.get(request_id)
    if request.kind != "confirmation":
        raise BadInput(f"{request.id} is an approval request; use `/menotime approve {request.id}`.")
    if request.requested_by != ctx.user_id:
        raise PolicyViolation(f"Only <@{request.requested_by}>, who asked for {request.id}, can confirm it.")
    decided = requests.decide(id=request.id, status="approved", by=ctx.user_id, now=ctx.core.clock.now())
    return _run_decided(ctx, decided)


def _run_decided(ctx: CommandContext, request: ChangeRequestView) -> ChangeResult:
    """Execute an approved request; it ends `executed`, or `failed` when a check refused it then."""
    requests = Requests(ctx.core.db)
    try:
        result = execute(
            ctx,
            action=request.action,
            params=request.params,
            requested_by=request.requested_by,
            holder=request.id,
            request=request,
        )
    except Exception as exc:
        requests.decide(
            id=request.id, status="failed", by=ctx.user_id, now=ctx.core.clock.now(), expect="approved"
        )
        reason = getattr(exc, "message", "an unexpected error")
        _close_message(
            ctx.core,
            request,
            f"Approved by <@{ctx.user_id}>, but refused when it ran: {reason} ({request.id})",
            ":x:",
        )
        raise
    requests.decide(
        id=request.id, status="executed", by=ctx.user_id, now=ctx.core.clock.now(), expect="approved"
    )
    if request.kind == "approval":
        _close_message(
            ctx.core,
            request,
            f"Approved by <@{ctx.user_id}>: deploying `{request.params['tag']}` "
            f"to {request.env} ({request.id})",
            ":white_check_mark:",
        )
    return result


def cancel(ctx: CommandContext, *, request_id: str) -> ChangeResult:
    requests = Requests(ctx.core.db)
    request = requests.get(request_id)
    if request.requested_by != ctx.user_id:
        raise PolicyViolation(f"Only <@{request.requested_by}>, who asked for {request.id}, can cancel it.")
    requests.decide(id=request.id, status="cancelled", by=ctx.user_id, now=ctx.core.clock.now())
    _close_message(
        ctx.core, request, f"Cancelled by <@{ctx.user_id}> ({request.id})", ":heavy_multiplication_x:"
    )
    return ChangeResult(
        headline=f"Cancelled {request.id}; nothing was changed.",
        emoji=":heavy_multiplication_x:",
        public=False,
    )


def approve(ctx: CommandContext, *, request_id: str) -> ChangeResult:
    requests = Requests(ctx.core.db)
    request = requests.get(request_id)
    if request.kind != "approval":
        raise BadInput(f"{request.id} needs no approval; the person who asked confirms it.")
    if request.requested_by == ctx.user_id:
        # The two-person rule binds everyone, admins included.
        raise PolicyViolation(f"You asked for {request.id}; another person must approve it.")
    _requester_still_allowed(ctx, request)
    decided = requests.decide(id=request.id, status="approved", by=ctx.user_id, now=ctx.core.clock.now())
    return _run_decided(ctx, decided)


def _requester_still_allowed(ctx: CommandContext, request: ChangeRequestView) -> None:
    """Roles change: the person who asked must still be allowed to ask when the change runs."""
    core = ctx.core
    requester = core.roles.identity(request.requested_by)
    # Break-glass requests stand on the emergency permission alone, as when they were asked.
    action = "emergency" if request.params.get("emergency") else request.action
    if not core.policy.decide(requester, action, request.env).allowed:
        raise PolicyViolation(
            f"<@{request.requested_by}>, who asked for {request.id}, may no longer "
            f"{request.action} on {request.env}; nothing was done."
        )


def deny(ctx: CommandContext, *, request_id: str, reason: str | None) -> ChangeResult:
    requests = Requests(ctx.core.db)
    request = requests.get(request_id)
    if request.kind != "approval":
        raise BadInput(f"{request.id} is not an approval request; its requester can `cancel` it.")
    decided = requests.decide(id=request.id, status="denied", by=ctx.user_id, now=ctx.core.clock.now())
    note = f"Denied by <@{ctx.user_id}>" + (f": {reason}" if reason else "") + f" ({request.id})"
    _close_message(ctx.core, decided, note, ":x:")
    return ChangeResult(headline=f"{note}; nothing was changed.", emoji=":x:")


def _close_message(core: Core, request: ChangeRequestView, outcome: str, emoji: str) -> None:
    if request.kind == "approval" and request.channel and request.message_ts:
        core.notifier.update(
            ref=MessageRef(request.channel, request.message_ts),
            result=_approval_message(request, _request_facts(request), "", decided=outcome, emoji=emoji),
        )


def expire_requests(core: Core) -> int:
    """Requests nobody decided in time: marked expired, audited, and their approval messages
    edited so the buttons go (a click would only be told "expired"). The number expired."""
    expired = 0
    requests = Requests(core.db)
    for request in requests.overdue(now=core.clock.now()):
        if not requests.expire(id=request.id):
            continue  # decided (or expired by another replica) meanwhile
        expired += 1
        core.audit.append(
            at=core.clock.now(),
            actor=BOT_ACTOR,
            source="expiry",
            verb=request.action,
            env=request.env,
            args={"request": request.id, **request.params},
            rule="expiry",
            outcome="expired",
            detail=f"{request.kind} not decided by {when(request.expires_at)}",
            request_id=request.id,
        )
        try:
            _close_message(
                core,
                request,
                f"Expired: nobody decided {request.id} by {when(request.expires_at)}; "
                "ask again if it is still wanted",
                ":hourglass:",
            )
        except Exception as exc:  # noqa: BLE001 - the expiry is recorded; the edit is a courtesy
            log.warning("expired_request_message_failed", request=request.id, error=type(exc).__name__)
    return expired


# --------------------------------------------------------------------------------------------
# Executing: every guardrail again, then the change under the environment's lease


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
    who = f"<@{requested_by}>" + (f", approved by <@{approval}>" if approval else "")
    headline = (
        f"Deploying `{tag}` to {env.name}: `{family}:{record.from_revision}` → "
        f"`{family}:{record.to_revision}` (asked by {who})"
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
    headline = (
        f"Rolling {env.name} back: `{family}:{params['from_revision']}` → `{family}:{params['to_revision']}` "
        f"(asked by <@{requested_by}>)"
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


def _link(core: Any, record: DeployView, deployment_id: str) -> None:
    """Tie the bot's record to its ECS deployment, so the observer never takes it for another's."""
    try:
        DeployLog(core.db).link(id=record.id, deployment_id=deployment_id, digest=None, commit=None)
    except IntegrityError:
        log.info("deployment_already_observed", record=record.id, deployment=deployment_id)


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
        headline = (
            f"{env.name}'s autoscaling minimum is now {count} (asked by <@{requested_by}>); "
            f"{change.desired_after} tasks run until the autoscaler brings them down"
        )
    else:
        headline = f"Scaled {env.name} to {count} tasks (asked by <@{requested_by}>)"
    result = ChangeResult(headline=headline, emoji=":straight_ruler:", facts=_scale_facts(env, change))
    if "scale" in env.confirm:
        core.notifier.post(channel=announce_channel(ctx, env), result=result)
    return result


# --------------------------------------------------------------------------------------------
# Following a rollout: one message, edited in place, until it ends


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
                lambda: DeployLog(core.db).set_message(id=record.id, channel=ref.channel, ts=ref.ts),
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
    leases, ttl = Leases(core.db), timedelta(minutes=core.config.changes.lease_minutes)
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
        lambda: DeployLog(core.db).finish(id=record.id, outcome=outcome, at=at, detail=detail),
        what="rollout_record_end",
        record=record,
        final=final,
    )
    _finally_write(
        core,
        lambda: Leases(core.db).release(env=env.name, holder=holder),
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
    leases, deploys, ended = Leases(core.db), DeployLog(core.db), 0
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
        back = f"{env.name}:{record.from_revision}"
        buttons = (
            Button(
                "Roll back",
                "menotime_rollback",
                back,
                f"rollback {env.name} {record.from_revision}",
                "danger",
            ),
        )
    return ChangeResult(
        headline=headline,
        emoji=emoji if not snap.rolled_back else ":leftwards_arrow_with_hook:",
        facts=facts,
        details=details,
        buttons=buttons,
    )


# --------------------------------------------------------------------------------------------
# Incident freeze


def lock(ctx: CommandContext, *, env_name: str, reason: str) -> ChangeResult:
    env = ctx.core.config.env(env_name)
    freeze = Freezes(ctx.core.db).freeze(env=env_name, reason=reason, by=ctx.user_id, at=ctx.core.clock.now())
    result = ChangeResult(
        headline=f"{env_name} is locked by <@{freeze.locked_by}>: {freeze.reason}",
        emoji=":lock:",
        footer="Deploys and scaling wait for `/menotime unlock " + env_name + "`; rollback still works.",
    )
    ctx.core.notifier.post(channel=announce_channel(ctx, env), result=result)
    return result


def unlock(ctx: CommandContext, *, env_name: str) -> ChangeResult:
    env = ctx.core.config.env(env_name)
    freeze = Freezes(ctx.core.db).unfreeze(env=env_name)
    result = ChangeResult(
        headline=f"{env_name} is unlocked by <@{ctx.user_id}> (was locked by "
        f"<@{freeze.locked_by}> since {when(freeze.locked_at)}: {freeze.reason})",
        emoji=":unlock:",
    )
    ctx.core.notifier.post(channel=announce_channel(ctx, env), result=result)
    return result


def env_notes(ctx: CommandContext, env_name: str) -> tuple[str, ...]:
    """Locks and changes in flight, for `status`."""
    now, notes = ctx.core.clock.now(), []
    freeze = Freezes(ctx.core.db).get(env_name)
    if freeze:
        notes.append(
            f":lock: locked by <@{freeze.locked_by}> since {when(freeze.locked_at)}: {freeze.reason}"
        )
    lease = Leases(ctx.core.db).get(env_name, now=now)
    if lease:
        notes.append(
            f":hourglass_flowing_sand: {lease.action} in flight by <@{lease.user}> since "
            f"{when(lease.acquired_at)}"
        )
    threads = open_alarms(ctx.core, env=env_name)
    if threads:
        acked = sum(1 for t in threads if t.acknowledged_by)
        notes.append(
            f":rotating_light: {len(threads)} alarm thread(s) open, {acked} acknowledged: "
            f"`/menotime alarms {env_name}`"
        )
    return tuple(notes)
