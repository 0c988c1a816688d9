"""The scheduler: fires the jobs' cron schedules with APScheduler while this replica holds the leader lease."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import PolicyViolation
from bot.job import JobSpec
from bot.scheduler.leases import LEADER_KEY, replica_id
from bot.scheduler.runner import JobRunner
from bot.scheduler.schedules import build_triggers, fires_between
from bot.store.jobruns import JobRunView, Trigger

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.core import Core

log = structlog.get_logger("menotime.jobs")


class JobScheduler:
    """Fires the schedules while this replica holds the leader lease.

    ``start()`` runs an APScheduler BackgroundScheduler whose only permanent job is ``tick()`` every
    third of the lease: it renews (or takes) the lease, adds the cron jobs and catches up missed runs
    on becoming leader, and removes the cron jobs when the lease is lost."""

    def __init__(
        self,
        core: Core,
        *,
        jobs: Sequence[JobSpec] | None = None,
        runner: JobRunner | None = None,
        holder: str | None = None,
        submit: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._core = core
        specs = tuple(jobs if jobs is not None else core.jobs)
        self._runner = runner or JobRunner(core, jobs=specs)
        self._triggers = build_triggers(core.config.jobs, specs)
        for spec in specs:  # a scheduled job's bad option fails the start, not Sunday's 03:00 run
            if spec.name in self._triggers:
                spec.options(core.config)
        self._leases = core.stores.leases
        self._runs = core.stores.job_runs
        self.holder = holder or replica_id()
        self._submit = submit
        self._leader = False
        self._lock = threading.Lock()
        self._aps: BackgroundScheduler | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def lease_ttl(self) -> timedelta:
        return timedelta(seconds=self._core.config.jobs.leader_lease_seconds)

    @property
    def scheduled(self) -> dict[str, datetime | None]:
        """The next fire of each cron job APScheduler holds now (empty unless started and leading)."""
        if self._aps is None:
            return {}
        return {
            job.id.removeprefix("job:"): job.next_run_time
            for job in self._aps.get_jobs()
            if job.id.startswith("job:")
        }

    def start(self) -> JobScheduler:
        from apscheduler.schedulers.background import BackgroundScheduler

        config = self._core.config.jobs
        self._aps = BackgroundScheduler(
            timezone=ZoneInfo(config.timezone),
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": config.misfire_grace_minutes * 60,
            },
        )
        self._aps.start()
        self.tick()
        self._aps.add_job(
            self.tick,
            "interval",
            seconds=max(1.0, self.lease_ttl.total_seconds() / 3),
            id="scheduler:lease",
            replace_existing=True,
        )
        log.info("scheduler_started", holder=self.holder, leader=self._leader, jobs=sorted(self._triggers))
        return self

    def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        with self._lock:
            if self._leader:
                self._leader = False
                try:
                    self._leases.release(env=LEADER_KEY, holder=self.holder)
                except SQLAlchemyError as exc:
                    log.warning("scheduler_lease_not_released", error=type(exc).__name__)

    def tick(self) -> bool:
        """Renews or takes the leader lease; starts or stops scheduling to match. Returns leadership."""
        with self._lock:
            now = self._core.clock.now()
            try:
                held = self._leases.renew(
                    env=LEADER_KEY, holder=self.holder, now=now, ttl=self.lease_ttl
                ) or self._take(now)
            except SQLAlchemyError as exc:
                # Cannot vouch for the lease: stop scheduling rather than risk running beside a new leader.
                log.warning("scheduler_lease_unreachable", error=type(exc).__name__)
                held = False
            if held != self._leader:
                self._leader = held
                self._reschedule(held)
                log.info("scheduler_leader" if held else "scheduler_follower", holder=self.holder)
        if held:
            self.catch_up()  # fires missed while no one led, or postponed while their job was busy
        return held

    def catch_up(self) -> list[tuple[str, datetime]]:
        """For each job, its most recent fire within the misfire grace, if no run records it, runs
        once now (trigger ``misfire``). Returns what it started."""
        if not self._leader:
            return []
        now = self._core.clock.now()
        since = now - timedelta(minutes=self._core.config.jobs.misfire_grace_minutes)
        due = []
        for name, trigger in self._triggers.items():
            fires = fires_between(trigger, since, now)
            if fires and not self._runs.exists(job=name, scheduled_for=fires[-1]):
                due.append((name, fires[-1]))
        for name, fire in due:
            log.info("job_misfire_catch_up", job=name, scheduled_for=fire.isoformat())

            def misfire(name: str = name, fire: datetime = fire) -> None:
                self.fire(name, fire, trigger="misfire")

            self._dispatch(misfire)
        return due

    def fire(self, name: str, scheduled_for: datetime, *, trigger: Trigger = "schedule") -> JobRunView | None:
        """One scheduled fire, if this replica leads; None if it does not or the fire ran elsewhere."""
        if not self._leader:
            log.info("job_fire_skipped_not_leader", job=name)
            return None
        try:
            return self._runner.run(name, trigger=trigger, scheduled_for=scheduled_for)
        except Exception:
            log.exception("job_fire_failed", job=name)
            return None

    # -- internals ---------------------------------------------------------------------------------

    def _take(self, now: datetime) -> bool:
        try:
            self._leases.acquire(
                env=LEADER_KEY,
                holder=self.holder,
                action="scheduler",
                user=self.holder[:64],
                now=now,
                ttl=self.lease_ttl,
            )
        except PolicyViolation:
            return False
        return True

    def _on_cron(self, name: str) -> None:
        """APScheduler's callback: the fire it stands for is the trigger's latest one up to now."""
        now = self._core.clock.now()
        grace = timedelta(minutes=self._core.config.jobs.misfire_grace_minutes)
        fires = fires_between(self._triggers[name], now - grace, now)
        self.fire(name, fires[-1] if fires else now.replace(second=0, microsecond=0))

    def _reschedule(self, leading: bool) -> None:
        if self._aps is None:
            return
        for name, trigger in self._triggers.items():
            if leading:
                self._aps.add_job(
                    self._on_cron, trigger, args=(name,), id=f"job:{name}", name=name, replace_existing=True
                )
            elif self._aps.get_job(f"job:{name}") is not None:
                self._aps.remove_job(f"job:{name}")

    def _dispatch(self, work: Callable[[], None]) -> None:
        if self._submit is not None:
            self._submit(work)
        elif self._aps is not None:
            self._aps.add_job(
                work
            )  # now, on APScheduler's pool: never inside tick(), which must keep renewing
        else:
            work()
