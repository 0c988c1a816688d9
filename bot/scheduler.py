"""When jobs run, and how one run goes: the job runner, the leader-elected scheduler, `jobs list`.

- :class:`JobRunner` runs one job now: records the run, holds the job's lease so it never runs twice at
  once, builds the :class:`~bot.jobkit.JobContext`, posts the report to the ops channel and times it.
- :class:`JobScheduler` fires the cron schedules of ``config.jobs`` (APScheduler), but only while this
  replica holds the leader lease (a renewable, expiring row in ``change_leases``). On becoming leader
  it catches up, once, the most recent fire of each job missed within the misfire grace.
  ``tick()`` and ``catch_up()`` do all the time-dependent work against the injected clock, so tests
  call them directly instead of waiting for APScheduler.

A scheduled fire is recorded with its ``scheduled_for`` time, unique per job in ``job_runs``: two
replicas that both believe they lead (one's lease just expired) still run each fire once.

Every run is audited where it starts and ends (:meth:`JobRunner.run`), as its actor: ``scheduler``
for a scheduled or caught-up fire, otherwise whoever asked (``cli:<OS user>``, a Slack user). The
job gets the same actor through ``JobContext.audit`` for each change it makes.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from apscheduler.triggers.cron import CronTrigger
from botocore.exceptions import ClientError
from sqlalchemy.exc import SQLAlchemyError

from bot.aws import error_code
from bot.config import JobsConfig
from bot.cron import CRON_DAYS as _CRON_DAYS
from bot.cron import cron_trigger
from bot.cron import weekday_names as _weekdays
from bot.errors import AccessDenied, BadInput, BotError, ConfigError, PolicyViolation
from bot.jobkit import Attachment, JobAudit, JobContext, JobReport, JobSpec
from bot.jobresults import (
    TRIGGER_WORDS,
    JobListEntry,
    JobRunResult,
    JobsListResult,
    JobStartedResult,
)
from bot.notify import MessageRef, Notifier
from bot.render import Renderable, mention
from bot.store.changes import Leases, short_pt
from bot.store.jobruns import FINISHED_OUTCOMES, JobRuns, JobRunView, Trigger

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.core import Core

log = structlog.get_logger("menotime.jobs")

LEADER_KEY = "scheduler:leader"  # a key no environment can have (env names have no colon)
JOB_LEASE_TTL = timedelta(minutes=15)  # renewed every third of it while the job runs
_TEXT_LIMIT = 500
_RECORD_LIMIT = 20_000  # characters of a report's JSON kept in job_runs.report
_REFUSALS = (PolicyViolation, AccessDenied, BadInput)
SCHEDULER_ACTOR = "scheduler"


def job_lease_key(name: str) -> str:
    return f"job:{name}"


def replica_id() -> str:
    """Who holds a lease: host, process and a random tag (a restarted process is a new holder)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def run_actor(*, trigger: str, requested_by: str | None) -> str:
    """Who a run acts as in the audit trail: the scheduler for its own fires, else whoever asked."""
    if trigger in ("schedule", "misfire") or not requested_by:
        return SCHEDULER_ACTOR
    return requested_by


def find_job(jobs: Iterable[JobSpec], name: str) -> JobSpec:
    """The job called ``name``, or BadInput naming the jobs there are."""
    by_name = {spec.name: spec for spec in jobs}
    spec = by_name.get(name.strip().lower())
    if spec is not None:
        return spec
    if not by_name:
        raise BadInput("No jobs are registered in this bot.")
    hint = difflib.get_close_matches(name.lower(), list(by_name), n=1, cutoff=0.6)
    guess = f" Did you mean `{hint[0]}`?" if hint else ""
    raise BadInput(f"There is no job `{name[:40]}`.{guess} Jobs: {', '.join(f'`{n}`' for n in by_name)}.")


# -- one run -----------------------------------------------------------------------------------------


class _LivingMessage:
    """JobContext.progress: the first call posts to the ops channel, later calls edit that message."""

    def __init__(self, notifier: Notifier, channel: str) -> None:
        self._notifier, self._channel = notifier, channel
        self._ref: MessageRef | None = None
        self._lock = threading.Lock()

    def __call__(self, result: Renderable) -> MessageRef | None:
        with self._lock:
            try:
                if self._ref is None:
                    self._ref = self._notifier.post(channel=self._channel, result=result)
                else:
                    self._notifier.update(ref=self._ref, result=result)
            except Exception as exc:  # noqa: BLE001 - a progress message must never stop the job
                log.warning("job_progress_post_failed", error=type(exc).__name__)
            return self._ref


class JobRunner:
    def __init__(
        self, core: Core, *, jobs: Sequence[JobSpec] | None = None, lease_ttl: timedelta = JOB_LEASE_TTL
    ) -> None:
        self._core = core
        self.jobs: tuple[JobSpec, ...] = tuple(jobs if jobs is not None else core.jobs)
        self._runs = JobRuns(core.db)
        self._leases = Leases(core.db)
        self._lease_ttl = lease_ttl

    def run(
        self,
        name: str,
        *,
        trigger: Trigger,
        dry_run: bool = False,
        override: bool = False,
        requested_by: str | None = None,
        scheduled_for: datetime | None = None,
    ) -> JobRunView | None:
        """Runs the job now and returns its finished record (``.result`` holds the report to show).

        Never raises for what the job does (a raising job is recorded as failed and reported); raises
        BadInput for an unknown job or an override it does not take. Returns None only for a
        scheduled fire (``scheduled_for``) that was already recorded (it ran elsewhere) or that
        found its job busy (postponed: the scheduler catches it up once the job is free) or whose start
        could not be audited (not run: the next tick tries it again)."""
        spec = find_job(self.jobs, name)
        if override and not spec.supports_override:
            raise BadInput(f"`{spec.name}` has no caps to override; run it without --override.")
        started = time.perf_counter()
        now = self._core.clock.now()
        key, holder = job_lease_key(spec.name), replica_id()
        try:
            self._leases.acquire(
                env=key,
                holder=holder,
                action=trigger,
                user=requested_by or trigger,
                now=now,
                ttl=self._lease_ttl,
            )
        except PolicyViolation:
            return self._refuse_busy(
                spec,
                trigger=trigger,
                dry_run=dry_run,
                requested_by=requested_by,
                scheduled_for=scheduled_for,
                started=started,
            )
        try:
            run = self._runs.start(
                job=spec.name,
                trigger=trigger,
                at=now,
                dry_run=dry_run,
                requested_by=requested_by,
                scheduled_for=scheduled_for,
            )
            if run is None:
                log.info("job_fire_already_run", job=spec.name, scheduled_for=str(scheduled_for))
                return None
            stale = self._runs.abandon_running(job=spec.name, keep=run.id, at=now)
            if stale:
                log.warning("job_runs_interrupted", job=spec.name, count=stale)
            with self._heartbeat(key, holder):
                return self._execute(spec, run, override=override, started=started)
        finally:
            self._leases.release(env=key, holder=holder)

    def running_message(self, name: str) -> str | None:
        """Why a new run of ``name`` would be refused right now, or None if it is not running."""
        now = self._core.clock.now()
        lease = self._leases.get(job_lease_key(name), now=now)
        if lease is None:
            return None
        who = f" by {mention(lease.user)}" if lease.user not in TRIGGER_WORDS else ""
        how = TRIGGER_WORDS.get(lease.action, lease.action)
        return (
            f"`{name}` is already running ({how}{who}, since {short_pt(lease.acquired_at, now)}); "
            "wait for its report before starting it again."
        )

    # -- internals ---------------------------------------------------------------------------------

    def _refuse_busy(
        self,
        spec: JobSpec,
        *,
        trigger: Trigger,
        dry_run: bool,
        requested_by: str | None,
        scheduled_for: datetime | None,
        started: float,
    ) -> JobRunView | None:
        now = self._core.clock.now()
        message = self.running_message(spec.name) or f"`{spec.name}` is already running; wait for its report."
        if scheduled_for is not None:
            # A scheduled fire is not refused but postponed: left unrecorded, the scheduler's next
            # tick catches it up once the running one ends (within the misfire grace).
            log.info("job_fire_postponed_busy", job=spec.name, scheduled_for=scheduled_for.isoformat())
            return None
        run = self._runs.start(
            job=spec.name,
            trigger=trigger,
            at=now,
            dry_run=dry_run,
            requested_by=requested_by,
            scheduled_for=scheduled_for,
            outcome="refused",
            summary=message,
        )
        if run is None:  # the same fire, recorded by the replica that is running it
            return None
        return self._conclude(spec, run, outcome="refused", summary=message, started=started)

    def _execute(
        self, spec: JobSpec, run: JobRunView, *, override: bool, started: float
    ) -> JobRunView | None:
        core = self._core
        try:
            options = spec.options(core.config)
        except ConfigError as exc:
            return self._conclude(
                spec, run, outcome="refused", summary=_line(f"bad configuration: {exc}"), started=started
            )
        files: list[Attachment] = []
        context = JobContext(
            settings=core.settings,
            config=core.config,
            db=core.db,
            aws=core.aws,
            clock=core.clock,
            notifier=core.notifier,
            options=options,
            run_id=run.id,
            dry_run=run.dry_run,
            override=override,
            requested_by=run.requested_by,
            progress=_LivingMessage(core.notifier, core.config.channels.ops),
            attach=files.append,
            audit=self._audit(run),
        )
        try:
            context.audit(
                verb=spec.name,
                env=spec.env,
                args={"dry_run": run.dry_run, "override": override},
                outcome="started",
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the database or AUDIT_KEY: never run a job unaudited
            return self._not_run_unaudited(spec, run, exc)
        bound = log.bind(job=spec.name, run=run.id, trigger=run.trigger)
        bound.info("job_started", dry_run=run.dry_run)
        try:
            report = spec.run(context)
        except (*_REFUSALS, ConfigError) as exc:
            return self._conclude(spec, run, outcome="refused", summary=_line(_message(exc)), started=started)
        except Exception as exc:  # noqa: BLE001 - a failing job is recorded and reported; the scheduler goes on
            if _from_database(exc):
                # A driver's message can quote row values (a unique-key DETAIL): never to Slack or the log.
                bound.error("job_crashed", error=type(exc).__name__)
                error = _line(
                    f"{type(exc).__name__}: a database error (run #{run.id}; its message is withheld)"
                )
            elif isinstance(exc, ClientError):
                # AWS messages name the account and the role; the code says what went wrong.
                bound.exception("job_crashed")
                error = _line(f"AWS refused: {error_code(exc)} (run #{run.id}; details in the bot's log)")
            else:
                bound.exception("job_crashed")
                error = _line(f"{type(exc).__name__}: {_message(exc)}")
            return self._conclude(spec, run, outcome="failed", summary=error, error=error, started=started)
        outcome = report.outcome if report.outcome in FINISHED_OUTCOMES else "failed"
        invalid = (
            None if outcome == report.outcome else f"the report's outcome {report.outcome!r} is not valid"
        )
        return self._conclude(
            spec,
            run,
            outcome=outcome,
            summary=_line(report.summary),
            error=invalid,
            report=report,
            files=files,
            started=started,
        )

    def _not_run_unaudited(self, spec: JobSpec, run: JobRunView, exc: Exception) -> JobRunView | None:
        """The run's start could not be audited, so the job does not run. A scheduled fire is
        forgotten (the next tick's catch-up tries it again); a run someone asked for is refused."""
        # A database error's message can quote row values: only its type. A ConfigError (AUDIT_KEY) says what to do.
        error = _line(str(exc)) if isinstance(exc, ConfigError) else type(exc).__name__
        log.error("job_not_run_unaudited", job=spec.name, run=run.id, trigger=run.trigger, error=error)
        if run.scheduled_for is not None:
            self._runs.forget(run.id)
            return None
        summary = f"not run: its start could not be written to the audit trail ({error}); try again later"
        done = self._runs.finish(run_id=run.id, outcome="refused", at=self._core.clock.now(), summary=summary)
        self._post(JobRunResult(done), done, ())
        return dataclasses.replace(done, result=JobRunResult(done))

    def _conclude(
        self,
        spec: JobSpec,
        run: JobRunView,
        *,
        outcome: str,
        summary: str,
        started: float,
        error: str | None = None,
        report: JobReport | None = None,
        files: Sequence[Attachment] = (),
    ) -> JobRunView:
        """Records the end, posts the report (or the scheduler's own word) and counts it."""
        core = self._core
        done = self._runs.finish(
            run_id=run.id,
            outcome=outcome,
            at=core.clock.now(),
            summary=summary,
            error=error,
            report=report_record(report) if report is not None else None,
        )
        self._audit(run)(
            verb=spec.name, env=spec.env, args={"dry_run": run.dry_run}, outcome=outcome, detail=summary
        )
        shown: Renderable = report if report is not None else JobRunResult(done)
        self._post(shown, done, files)
        elapsed = time.perf_counter() - started
        core.metrics.job_seconds.labels(job=spec.name, outcome=outcome).observe(elapsed)
        core.metrics.job_runs.labels(job=spec.name, trigger=run.trigger, outcome=outcome).inc()
        log.info(
            "job_finished",
            job=spec.name,
            run=run.id,
            trigger=run.trigger,
            outcome=outcome,
            dry_run=run.dry_run,
            seconds=round(elapsed, 3),
        )
        return dataclasses.replace(done, result=shown)

    def _post(self, shown: Renderable, run: JobRunView, files: Sequence[Attachment]) -> None:
        notifier, channel = self._core.notifier, self._core.config.channels.ops
        try:
            ref = notifier.post(channel=channel, result=shown)
        except Exception as exc:  # noqa: BLE001 - e.g. a report template bug: say so with the plain record
            log.error("job_report_post_failed", job=run.job, run=run.id, error=type(exc).__name__)
            try:
                ref = notifier.post(channel=channel, result=JobRunResult(run))
            except Exception:
                log.exception("job_record_post_failed", job=run.job, run=run.id)
                return
        for file in files:
            if ref is None:
                log.info("job_attachment_not_posted", job=run.job, file=file.filename)  # no channel here
                continue
            try:
                notifier.upload(ref=ref, filename=file.filename, content=file.content, title=file.title)
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "job_attachment_upload_failed", job=run.job, file=file.filename, error=type(exc).__name__
                )

    def _audit(self, run: JobRunView) -> JobAudit:
        """The run's audit: every event as the run's actor, its trigger as the rule, its id as the request."""
        core = self._core
        actor = run_actor(trigger=run.trigger, requested_by=run.requested_by)

        def audit(
            *, verb: str, env: str | None, args: Mapping[str, Any], outcome: str, detail: str | None = None
        ) -> None:
            core.audit.append(
                at=core.clock.now(),
                actor=actor,
                source="job",
                verb=verb,
                env=env,
                args={"job": run.job, "run": run.id, "trigger": run.trigger, **args},
                rule=f"job:{run.trigger}",
                outcome=outcome,
                detail=detail,
                request_id=f"job-run-{run.id}",
            )

        return audit

    @contextmanager
    def _heartbeat(self, key: str, holder: str) -> Iterator[None]:
        """Keeps the job's lease alive while it runs (a crashed run's lease lapses within the TTL)."""
        stop = threading.Event()
        interval = self._lease_ttl.total_seconds() / 3

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self._leases.renew(
                        env=key, holder=holder, now=self._core.clock.now(), ttl=self._lease_ttl
                    )
                except SQLAlchemyError as exc:
                    log.warning("job_lease_renew_failed", key=key, error=type(exc).__name__)

        thread = threading.Thread(target=beat, name=f"lease-{key}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)


def _from_database(exc: BaseException) -> bool:
    return isinstance(exc, SQLAlchemyError) or type(exc).__module__.split(".")[0] in (
        "psycopg",
        "psycopg2",
        "sqlite3",
    )


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, BotError) else str(exc)


def _line(text: str) -> str:
    """One line, bounded: what `jobs list` and the run record show."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _TEXT_LIMIT else flat[: _TEXT_LIMIT - 1] + "…"


def report_record(report: JobReport) -> dict[str, Any]:
    """A JSON summary of a report for ``job_runs.report``: its outcome and summary, and its fields
    (a report may shape these with a ``record() -> dict`` method), dropped if they are too large."""
    record: dict[str, Any] = {
        "template": report.template,
        "outcome": report.outcome,
        "summary": report.summary,
    }
    shape: object = report  # as an object: mypy narrows no Protocol type by is_dataclass
    try:
        shaper = getattr(report, "record", None)
        if callable(shaper):
            detail: Any = shaper()
        elif dataclasses.is_dataclass(shape) and not isinstance(shape, type):  # a report is an instance
            detail = dataclasses.asdict(shape)
        elif hasattr(shape, "model_dump"):
            detail = shape.model_dump(mode="json")
        else:
            return record
        text = json.dumps(detail, default=str)
    except Exception as exc:  # noqa: BLE001 - the record is a convenience; the run stands without it
        log.warning("job_report_not_recorded", template=report.template, error=type(exc).__name__)
        return record
    if len(text) > _RECORD_LIMIT:
        record["detail_omitted"] = f"{len(text):,} characters"
    else:
        record["detail"] = json.loads(text)
    return record


# -- schedules ---------------------------------------------------------------------------------------

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
    zone = "PT" if timezone == "America/Los_Angeles" else timezone
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


EARLIER_SHOWN = 2  # runs listed under the last one


def list_jobs(core: Core, *, jobs: Sequence[JobSpec] | None = None) -> JobsListResult:
    """Every job with its schedule, next run (from the cron, whoever leads) and last run."""
    specs = tuple(jobs if jobs is not None else core.jobs)
    config = core.config.jobs
    now = core.clock.now()
    runs = JobRuns(core.db)
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
    leader = Leases(core.db).get(LEADER_KEY, now=now)
    return JobsListResult(jobs=tuple(entries), leader=leader.holder if leader else None)


# -- the scheduler -----------------------------------------------------------------------------------


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
        self._leases = Leases(core.db)
        self._runs = JobRuns(core.db)
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
