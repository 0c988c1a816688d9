"""The seed's guardrails on changes, each a function that returns quietly or raises one sentence
naming the rule and what would satisfy it. They are checked when a change is asked for and again
when it runs (after a confirmation click or an approval), so a stale "yes" cannot slip through."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import Config, EnvironmentConfig
from bot.errors import BadInput, PolicyViolation
from bot.render import when
from bot.store.changes import Freezes
from bot.store.deploys import DeployLog


def tag_allowed(*, env: EnvironmentConfig, tag: str) -> None:
    if not env.image_tags.accepts(tag):
        raise BadInput(f"`{tag[:60]}` is not an image tag {env.name} accepts: {env.name} takes {env.image_tags.rule}.")


def not_frozen(*, freezes: Freezes, env: EnvironmentConfig, what: str) -> None:
    freeze = freezes.get(env.name)
    if freeze is not None:
        raise PolicyViolation(
            f"{env.name} is locked by <@{freeze.locked_by}> since {when(freeze.locked_at)}: {freeze.reason}. "
            f"No {what} until `/menotime unlock {env.name}`; rollback still works."
        )


def in_window(*, env: EnvironmentConfig, now: datetime, emergency: str | None) -> None:
    window = env.change_window
    if window is None or emergency or window.contains(now):
        return
    local = now.astimezone(ZoneInfo(window.timezone))
    raise PolicyViolation(
        f"{env.name} deploys are allowed {window.describe()}; it is {local:%a %H:%M %Z} now. "
        f"Wait for the window, or if this cannot wait and you are on call, add `--emergency \"<reason>\"`."
    )


def soaked(*, config: Config, env: EnvironmentConfig, deploys: DeployLog, tag: str, digest: str, now: datetime,
           emergency: str | None) -> None:
    soak = env.soak
    if soak is None or emergency:
        return
    needed = timedelta(hours=soak.hours)
    ran, since = deploys.time_run(env=soak.env, digest=digest, now=now)
    if ran >= needed:
        return
    short = digest.removeprefix("sha256:")[:12]
    if since is None and ran == timedelta(0):
        raise PolicyViolation(
            f"`{tag}` (digest {short}) has never run in {soak.env}; {env.name} needs it to run there "
            f"{soak.hours:g} h first. Deploy it to {soak.env}, or use `--emergency \"<reason>\"` if you are on call."
        )
    ready = (since + needed) if since else None
    hours = ran.total_seconds() / 3600
    tail = f" It will be ready at {when(ready)}." if ready else " It no longer runs there."
    raise PolicyViolation(
        f"`{tag}` (digest {short}) has run in {soak.env} for {hours:.1f} h; {env.name} needs {soak.hours:g} h.{tail} "
        f"Use `--emergency \"<reason>\"` only if this cannot wait and you are on call."
    )


def within_bounds(*, env: EnvironmentConfig, count: int) -> None:
    low, high = env.tasks.min, env.tasks.max
    if not low <= count <= high:
        raise PolicyViolation(f"{env.name} allows {low}–{high} tasks; ask for a number in that range.")
