"""The guardrails that read history, checked when a deploy is asked and again when it runs: the
soak (what the soak environment ran) and the cadence (releases this week)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from bot import guardrails, observe
from bot.config import EnvironmentConfig
from bot.dispatch import CommandContext
from bot.errors import BotError, PolicyViolation


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
            deploys=core.stores.deploys,
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
    releases = len(ctx.core.stores.deploys.releases_since(env=env.name, since=monday))
    planned = env.cadence.per_week
    text = f"{releases} of {planned} planned (since Mon {monday:%-d %b})"
    if releases >= planned:
        text += "; this one is over the plan" + (" and refused" if env.cadence.blocking else "")
    return releases, text
