"""The cron schedules of ``config.jobs``: their triggers, their wall-clock fires and how they read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bot.clock import zone_label
from bot.config import JobsConfig
from bot.cron import CRON_DAYS as _CRON_DAYS
from bot.cron import cron_trigger
from bot.cron import weekday_names as _weekdays
from bot.errors import ConfigError
from bot.job import JobSpec

_DAY_NAMES = dict(
    zip(
        _CRON_DAYS,
        ("Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays"),
        strict=True,
    )
)


def build_triggers(config: JobsConfig, jobs: Sequence[JobSpec]) -> dict[str, CronTrigger]:
    """The enabled schedules by job; a schedule naming a job that does not exist is a ConfigError."""
    known = {spec.name for spec in jobs}
    unknown = sorted(name for name in config.schedules if name not in known)
    if unknown:
        raise ConfigError(
            f"jobs.schedules: unknown job {', '.join(map(repr, unknown))}; "
            f"jobs are {', '.join(sorted(known)) or '(none registered)'}"
        )
    try:
        return {name: cron_trigger(expr, config.timezone) for name, expr in config.schedules.items() if expr}
    except ValueError as exc:
        raise ConfigError(f"jobs.schedules: {exc}") from None


def wall_clock_fire(moment: datetime) -> datetime:
    """The fire a moment stands for. In the hour a DST fall-back repeats (01:00-01:59 PT on the first
    Sunday of November) APScheduler fires a fixed-time cron twice, the second time with ``fold=1``;
    like cron, that is one wall-clock fire: it maps to the first, so ``scheduled_for`` (unique per job)
    lets it run once."""
    if moment.fold:
        first = moment.replace(fold=0)
        if first.utcoffset() != moment.utcoffset():
            return first
    return moment


def fires_between(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """The trigger's wall-clock fires (:func:`wall_clock_fire`) at moments in ``(start, end]``, oldest first."""
    fires: list[datetime] = []
    moment = trigger.get_next_fire_time(None, start + timedelta(microseconds=1))
    while moment is not None and moment <= end:
        fire = wall_clock_fire(moment)
        if not fires or fires[-1].astimezone(UTC) != fire.astimezone(UTC):
            fires.append(fire)
        # Step in UTC: local arithmetic drops ``fold``, and the fall-back's second fire would repeat forever.
        moment = trigger.get_next_fire_time(moment, moment.astimezone(UTC) + timedelta(microseconds=1))
    return fires


def describe_schedule(expr: str, timezone: str) -> str:
    """``Sundays 03:00 PT``, ``the 1st of each month 09:00 PT``, ``daily 02:30 PT``; else the cron."""
    zone = zone_label(timezone)
    if not expr:
        return "not scheduled (run by hand)"
    minute, hour, dom, month, dow = expr.split()
    if not (minute.isdigit() and hour.isdigit()) or month != "*":
        return f"cron `{expr}` ({zone})"
    at = f"{int(hour):02d}:{int(minute):02d} {zone}"
    names = _weekdays(dow).split(",") if dow != "*" else []
    if dom == "*" and dow == "*":
        return f"daily {at}"
    if dom == "*" and names and all(n in _CRON_DAYS for n in names):
        return f"{', '.join(_DAY_NAMES[n] for n in names)} {at}"
    if dom.isdigit() and dow == "*":
        return f"the {_ordinal(int(dom))} of each month {at}"
    return f"cron `{expr}` ({zone})"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
