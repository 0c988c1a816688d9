"""`/menotime jobs list` and `/menotime jobs run`: every job with its schedule and runs; one run started now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from bot.cron import cron_trigger
from bot.errors import BadInput, PolicyViolation
from bot.job import JobSpec
from bot.scheduler.answers import JobListEntry, JobsListResult, JobStartedResult
from bot.scheduler.leases import LEADER_KEY
from bot.scheduler.runner import JobRunner, find_job
from bot.scheduler.schedules import describe_schedule

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.jobs")


EARLIER_SHOWN = 2  # runs listed under the last one


def list_jobs(core: Core, *, jobs: Sequence[JobSpec] | None = None) -> JobsListResult:
    """Every job with its schedule, next run (from the cron, whoever leads) and last run."""
    specs = tuple(jobs if jobs is not None else core.jobs)
    config = core.config.jobs
    now = core.clock.now()
    runs = core.stores.job_runs
    last, running = runs.last_by_job(), runs.running()
    entries = []
    for spec in specs:
        expr = config.schedules.get(spec.name, "")
        next_run = cron_trigger(expr, config.timezone).get_next_fire_time(None, now) if expr else None
        entries.append(
            JobListEntry(
                name=spec.name,
                summary=spec.summary,
                env=spec.env,
                schedule=describe_schedule(expr, config.timezone),
                next_run=next_run,
                last=last.get(spec.name),
                running=running.get(spec.name),
                earlier=tuple(runs.recent(job=spec.name, limit=EARLIER_SHOWN + 1)[1:]),
            )
        )
    leader = core.stores.leases.get(LEADER_KEY, now=now)
    return JobsListResult(jobs=tuple(entries), leader=leader.holder if leader else None)


def start_job(
    core: Core, *, name: str, requested_by: str, dry_run: bool = False, override: bool = False
) -> JobStartedResult:
    """`/menotime jobs run`: checks what can be checked at once, runs the job with
    ``core.run_background`` and answers straight away; the report goes to the ops channel."""
    runner = JobRunner(core)
    spec = find_job(runner.jobs, name)
    if override and not spec.supports_override:
        raise BadInput(f"`{spec.name}` has no caps to override; run it without --override.")
    busy = runner.running_message(spec.name)
    if busy:
        raise PolicyViolation(busy)

    def work() -> None:
        try:
            runner.run(
                spec.name, trigger="manual", dry_run=dry_run, override=override, requested_by=requested_by
            )
        except Exception:
            log.exception("job_background_run_failed", job=spec.name)

    core.run_background(work)
    return JobStartedResult(
        job=spec.name,
        requested_by=requested_by,
        channel=core.config.channels.ops,
        dry_run=dry_run,
        override=override,
    )
