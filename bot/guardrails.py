"""The seed's guardrails on changes, each a function that returns quietly or raises one sentence
naming the rule and what would satisfy it. They are checked when a change is asked for and again
when it runs (after a confirmation click or an approval), so a stale "yes" cannot slip through."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import EnvironmentConfig
from bot.errors import BadInput, PolicyViolation
from bot.observe import SoakEvidence
from bot.render import duration, when
from bot.rich import Mention, Rich
from bot.store.changes import Freezes
from bot.store.deploys import IN_PROGRESS, ROLLED_BACK


def tag_allowed(*, env: EnvironmentConfig, tag: str) -> None:
    if not env.image_tags.accepts(tag):
        raise BadInput(
            f"`{tag[:60]}` is not an image tag {env.name} accepts: {env.name} takes {env.image_tags.rule}."
        )


def not_frozen(*, freezes: Freezes, env: EnvironmentConfig, what: str) -> None:
    freeze = freezes.get(env.name)
    if freeze is not None:
        raise PolicyViolation(
            Rich(
                f"{env.name} is locked by ",
                Mention(freeze.locked_by),
                f" since {when(freeze.locked_at)}: {freeze.reason}. "
                f"No {what} until `/menotime unlock {env.name}`; rollback still works.",
            )
        )


def in_window(*, env: EnvironmentConfig, now: datetime, emergency: str | None) -> None:
    window = env.change_window
    if window is None or emergency or window.contains(now):
        return
    local = now.astimezone(ZoneInfo(window.timezone))
    raise PolicyViolation(
        f"{env.name} deploys are allowed {window.describe()}; it is {local:%a %H:%M %Z} now. "
        f'Wait for the window, or if this cannot wait and you are on call, add `--emergency "<reason>"`.'
    )


def soaked(
    *,
    env: EnvironmentConfig,
    evidence: SoakEvidence,
    tag: str,
    digest: str,
    now: datetime,
    emergency: str | None,
) -> None:
    """The candidate (the same digest, or an image of the same commit) first ran in the soak
    environment at least the soak's hours ago, in a deployment that completed and was not rolled
    back. Otherwise one sentence with what the records show, and when it will be soaked."""
    soak = env.soak
    if soak is None or emergency:
        return
    needed = timedelta(hours=soak.hours)
    what = f"`{tag}` (digest {digest.removeprefix('sha256:')[:12]})"
    glass = 'Use `--emergency "<reason>"` only if this cannot wait and you are on call.'
    good = evidence.completed
    if good:
        since = min(r.ran_from for r in good)
        if now - since >= needed:
            return
        raise PolicyViolation(
            f"{what} has been in {soak.env} since {when(since)}, {duration(since, now)}; {env.name} needs "
            f"{soak.hours:g} h there: soaked at {when(since + needed)}. {glass}"
        )
    if not evidence.records:
        raise PolicyViolation(
            f"{what} has not run in {soak.env}; {env.name} needs it to run there {soak.hours:g} h first. "
            f"Deploy it to {soak.env} (or let CI/CD do it), or {glass[0].lower()}{glass[1:]}"
        )
    last = evidence.records[-1]
    if last.outcome == IN_PROGRESS:
        state = (
            f"is rolling out in {soak.env} since {when(last.started_at)}; it is soaked {soak.hours:g} h "
            "after that deployment completes"
        )
    elif last.id in evidence.rolled_back or last.outcome == ROLLED_BACK:
        state = f"was rolled back in {soak.env} (deployed {when(last.started_at)}), so it never soaked there"
    else:
        state = f"did not complete in {soak.env} ({last.outcome.replace('_', ' ')}, {when(last.started_at)})"
    raise PolicyViolation(
        f"{what} {state}; {env.name} needs a completed deployment there {soak.hours:g} h old. {glass}"
    )


def within_bounds(*, env: EnvironmentConfig, count: int) -> None:
    low, high = env.tasks.min, env.tasks.max
    if not low <= count <= high:
        raise PolicyViolation(f"{env.name} allows {low}–{high} tasks; ask for a number in that range.")


def within_cadence(*, env: EnvironmentConfig, releases: int, emergency: str | None) -> None:
    """Only where the cadence is configured as blocking: no more releases this week than planned."""
    cadence = env.cadence
    if cadence is None or not cadence.blocking or emergency or releases < cadence.per_week:
        return
    raise PolicyViolation(
        f"{env.name} has had {releases} release{'s' if releases != 1 else ''} this week; the plan is "
        f"{cadence.per_week} a week. Wait for Monday, or if this cannot wait and you are on call, add "
        '`--emergency "<reason>"`.'
    )
