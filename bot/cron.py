"""Cron expressions as cron means them: one function for the configuration's check and the scheduler.

APScheduler 3 numbers weekdays from Monday (0) to Sunday (6); cron from Sunday (0 or 7) to Saturday
(6). A schedule is checked when the configuration loads and run by the scheduler with the same
translation, so `0 3 * * 7` (Sundays) is neither refused at load nor run on another day.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def weekday_names(field: str) -> str:
    """Standard cron weekday numbers (0 or 7 = Sunday) as names: APScheduler 3 counts 0 as Monday."""
    if field == "*" or re.search(r"[a-z]", field, re.IGNORECASE):
        return field
    days: set[int] = set()
    for part in field.split(","):
        refusal = ValueError(f"weekday {part!r} is not a cron weekday (0-7, 0 and 7 are Sunday)")
        spec, _, step = part.partition("/")
        try:
            if spec == "*":
                low, high = 0, 6
            elif "-" in spec:
                low, high = (int(v) for v in spec.split("-", 1))
            else:
                low = high = int(spec)
                if step:
                    high = 6
            every = int(step or 1)
        except ValueError:
            raise refusal from None
        if not 0 <= low <= high <= 7 or every < 1:
            raise refusal
        days.update(d % 7 for d in range(low, high + 1, every))
    return ",".join(CRON_DAYS[d] for d in sorted(days, key=lambda d: (d - 1) % 7))


def cron_trigger(expr: str, timezone: str) -> CronTrigger:
    """A 5-field cron expression in ``timezone``, with cron's (not APScheduler's) weekday numbers."""
    fields = expr.split()
    if len(fields) == 5:
        fields[4] = weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=ZoneInfo(timezone))
