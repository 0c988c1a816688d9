"""What changes show: a digest in short, a scale change's facts, a request's facts and the approval
message with its buttons."""

from __future__ import annotations

from bot import ecs
from bot.answers import ChangeResult
from bot.buttons import APPROVE, DENY
from bot.config import EnvironmentConfig
from bot.render import when
from bot.rich import Mention, Rich
from bot.store.changes import ChangeRequestView


def _short_digest(digest: str | None) -> str:
    return (digest or "").removeprefix("sha256:")[:12]


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
            APPROVE.button("Approve", request.id, style="primary"),
            DENY.button("Deny", request.id, style="danger"),
        )
    )
    return ChangeResult(
        headline=decided
        or Rich(
            Mention(request.requested_by),
            f" asks to deploy `{params['tag']}` to {request.env} ({request.id})",
        ),
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
