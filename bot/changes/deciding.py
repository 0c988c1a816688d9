"""Deciding a held change: confirm or cancel by the asker, approve or deny by another person
(two-person rule, the requester still allowed), and expiry of what nobody decided in time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bot.answers import ChangeResult
from bot.changes.execution import execute
from bot.changes.messages import _approval_message, _request_facts
from bot.dispatch import CommandContext
from bot.errors import BadInput, PolicyViolation
from bot.notify import MessageRef
from bot.render import when
from bot.rich import Mention, Rich
from bot.store.audit import BOT_ACTOR
from bot.store.changes import ChangeRequestView

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.changes")


def confirm(ctx: CommandContext, *, request_id: str) -> ChangeResult:
    requests = ctx.core.stores.requests
    request = requests.get(request_id)
    if request.kind != "confirmation":
        raise BadInput(f"{request.id} is an approval request; use `/menotime approve {request.id}`.")
    if request.requested_by != ctx.user_id:
        raise PolicyViolation(
            Rich("Only ", Mention(request.requested_by), f", who asked for {request.id}, can confirm it.")
        )
    decided = requests.decide(id=request.id, status="approved", by=ctx.user_id, now=ctx.core.clock.now())
    return _run_decided(ctx, decided)


def _run_decided(ctx: CommandContext, request: ChangeRequestView) -> ChangeResult:
    """Execute an approved request; it ends `executed`, or `failed` when a check refused it then."""
    requests = ctx.core.stores.requests
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
            Rich(
                "Approved by ",
                Mention(ctx.user_id),
                ", but refused when it ran: ",
                reason,
                f" ({request.id})",
            ),
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
            Rich(
                "Approved by ",
                Mention(ctx.user_id),
                f": deploying `{request.params['tag']}` to {request.env} ({request.id})",
            ),
            ":white_check_mark:",
        )
    return result


def cancel(ctx: CommandContext, *, request_id: str) -> ChangeResult:
    requests = ctx.core.stores.requests
    request = requests.get(request_id)
    if request.requested_by != ctx.user_id:
        raise PolicyViolation(
            Rich("Only ", Mention(request.requested_by), f", who asked for {request.id}, can cancel it.")
        )
    requests.decide(id=request.id, status="cancelled", by=ctx.user_id, now=ctx.core.clock.now())
    _close_message(
        ctx.core,
        request,
        Rich("Cancelled by ", Mention(ctx.user_id), f" ({request.id})"),
        ":heavy_multiplication_x:",
    )
    return ChangeResult(
        headline=f"Cancelled {request.id}; nothing was changed.",
        emoji=":heavy_multiplication_x:",
        public=False,
    )


def approve(ctx: CommandContext, *, request_id: str) -> ChangeResult:
    requests = ctx.core.stores.requests
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
            Rich(
                Mention(request.requested_by),
                f", who asked for {request.id}, may no longer {request.action} on {request.env}; nothing was done.",
            )
        )


def deny(ctx: CommandContext, *, request_id: str, reason: str | None) -> ChangeResult:
    requests = ctx.core.stores.requests
    request = requests.get(request_id)
    if request.kind != "approval":
        raise BadInput(f"{request.id} is not an approval request; its requester can `cancel` it.")
    decided = requests.decide(id=request.id, status="denied", by=ctx.user_id, now=ctx.core.clock.now())
    note = Rich("Denied by ", Mention(ctx.user_id), f": {reason}" if reason else "", f" ({request.id})")
    _close_message(ctx.core, decided, note, ":x:")
    return ChangeResult(headline=note + "; nothing was changed.", emoji=":x:")


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
    requests = core.stores.requests
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
