"""One run of a job, now: recorded, under the job's lease, audited, reported to the ops channel and timed."""

from __future__ import annotations

import dataclasses
import difflib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import ClientError
from sqlalchemy.exc import SQLAlchemyError

from bot.aws import error_code
from bot.errors import AccessDenied, BadInput, ConfigError, PolicyViolation
from bot.job import Attachment, JobAudit, JobContext, JobReport, JobSpec
from bot.render import Renderable
from bot.rich import Mention, Rich
from bot.scheduler.answers import TRIGGER_WORDS, JobRunResult
from bot.scheduler.leases import JOB_LEASE_TTL, job_lease_key, replica_id
from bot.scheduler.living_message import _LivingMessage
from bot.scheduler.run_record import _from_database, _line, _message, report_record, run_actor
from bot.store.changes import short_pt
from bot.store.jobruns import FINISHED_OUTCOMES, JobRunView, Trigger

if TYPE_CHECKING:
    from bot.core import Core

log = structlog.get_logger("menotime.jobs")

_REFUSALS = (PolicyViolation, AccessDenied, BadInput)


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


class JobRunner:
    def __init__(
        self, core: Core, *, jobs: Sequence[JobSpec] | None = None, lease_ttl: timedelta = JOB_LEASE_TTL
    ) -> None:
        self._core = core
        self.jobs: tuple[JobSpec, ...] = tuple(jobs if jobs is not None else core.jobs)
        self._runs = core.stores.job_runs
        self._leases = core.stores.leases
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
        who = (" by ", Mention(lease.user)) if lease.user not in TRIGGER_WORDS else ()
        how = TRIGGER_WORDS.get(lease.action, lease.action)
        return Rich(
            f"`{name}` is already running ({how}",
            *who,
            f", since {short_pt(lease.acquired_at, now)}); wait for its report before starting it again.",
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
