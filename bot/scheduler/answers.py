"""What `jobs` answers: the job list, "started", and a run's outcome when the job left no report.

Rendered by ``templates/{slack,text}/jobs_*.j2`` like every result. A job's own report (the dev
cleanup's counts, the cost digest) is rendered by the job's templates; :class:`JobRunResult` is the
scheduler's word on a run that failed or was refused before it produced one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from bot.render import Audience, mention, plural
from bot.rich import Rich
from bot.store.jobruns import JobRunView

TRIGGER_WORDS = {"schedule": "scheduled run", "misfire": "catch-up of a missed run", "manual": "run by hand"}
_EMOJI = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "refused": ":no_entry:",
    "running": ":hourglass:",
}


def outcome_emoji(outcome: str) -> str:
    return _EMOJI.get(outcome, ":grey_question:")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


@dataclass(frozen=True)
class JobListEntry:
    name: str
    summary: str
    env: str
    schedule: str  # in words ("Sundays 03:00 PT"), the cron with its zone, or "not scheduled"
    next_run: datetime | None
    last: JobRunView | None
    running: JobRunView | None
    earlier: tuple[JobRunView, ...] = ()  # the runs before the last, newest first

    @property
    def last_emoji(self) -> str:
        return outcome_emoji(self.last.outcome) if self.last else ""

    @property
    def last_line(self) -> str:
        return run_line(self.last) if self.last else "never run"

    @property
    def earlier_lines(self) -> tuple[tuple[datetime, str], ...]:
        return tuple((run.started_at, run_line(run)) for run in self.earlier)


def run_line(run: JobRunView) -> str:
    dry = " (dry run)" if run.dry_run else ""
    return f"{run.outcome}{dry}" + (f": {run.summary}" if run.summary else "")


@dataclass(frozen=True)
class JobsListResult:
    template: ClassVar[str] = "jobs_list"
    audience: ClassVar[Audience] = "ephemeral"

    jobs: tuple[JobListEntry, ...]
    leader: str | None = None  # who runs the scheduler now (a replica id), if anyone

    @property
    def headline(self) -> str:
        return f"Scheduled jobs ({plural(len(self.jobs), 'job')})"

    @property
    def leader_line(self) -> str:
        if self.leader is None:
            return "No bot replica holds the scheduler lease now: scheduled runs wait until one does."
        return f"Schedules are run by replica {self.leader}."


@dataclass(frozen=True)
class JobRunResult:
    """A run's outcome as the scheduler saw it (posted to the ops channel when the job produced no
    report of its own: it raised, its options were bad, it was already running)."""

    template: ClassVar[str] = "jobs_run"
    audience: ClassVar[Audience] = "in_channel"

    run: JobRunView

    @property
    def emoji(self) -> str:
        return outcome_emoji(self.run.outcome)

    @property
    def headline(self) -> str:
        run = self.run
        dry = " (dry run)" if run.dry_run else ""
        return f"`{run.job}`{dry} {run.outcome}: {run.summary or run.outcome}"

    @property
    def facts(self) -> tuple[tuple[str, str], ...]:
        run = self.run
        facts = [("Trigger", TRIGGER_WORDS.get(run.trigger, run.trigger))]
        if run.requested_by:
            facts.append(("Asked by", mention(run.requested_by)))
        facts.append(("Run", f"#{run.id}, {duration(run.seconds)}"))
        if run.error and run.error != run.summary:
            facts.append(("Error", run.error))
        return tuple(facts)


@dataclass(frozen=True)
class JobStartedResult:
    """The immediate answer to `/menotime jobs run NAME`: the report comes later, in the ops channel."""

    template: ClassVar[str] = "jobs_started"
    audience: ClassVar[Audience] = "in_channel"

    job: str
    requested_by: str
    channel: str
    dry_run: bool = False
    override: bool = False

    @property
    def headline(self) -> str:
        mode = " as a dry run (nothing will change)" if self.dry_run else ""
        caps = " with the caps overridden" if self.override else ""
        return Rich(
            mention(self.requested_by),
            f" started `{self.job}`{mode}{caps}; the report will be posted in {self.channel}.",
        )
