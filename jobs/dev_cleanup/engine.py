"""The two-phase cleanup: survey every kind, delete what an earlier run marked and still matches,
mark what is new, drop marks that no longer match; caps stop every deletion at once.

The survey is the same for a dry run and a real one, so a dry run lists exactly what the real run
would mark and delete; it only skips the deletions and the writes to the marks table.

Every deletion is audited as the run's actor: what a kind is about to delete before it starts,
then one event per resource deleted and per resource that could not be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from sqlalchemy.exc import SQLAlchemyError

from bot.aws import AwsGateway
from bot.config import Config
from bot.errors import AwsUnavailable, BotError
from bot.job import JobAudit, Outcome, not_audited
from bot.store.cleanup import CleanupMarks, Mark, NewMark
from bot.store.db import Database
from jobs.dev_cleanup.database import DatabaseRows
from jobs.dev_cleanup.ecr import EcrImages
from jobs.dev_cleanup.ecs import TaskDefinitions, load_inventory
from jobs.dev_cleanup.guards import Names, Refused, check_targets, dev_environment
from jobs.dev_cleanup.logs import LogGroups
from jobs.dev_cleanup.model import GIB, Collector, ItemError, Resource, Scope, Survey, describe_error
from jobs.dev_cleanup.options import Cap, DevCleanupOptions
from jobs.dev_cleanup.report import DevCleanupReport, KindReport, summary_line
from jobs.dev_cleanup.storage import EbsVolumes, RdsSnapshots

COLLECTORS: tuple[Collector, ...] = (
    TaskDefinitions(),
    EcrImages(),
    RdsSnapshots(),
    EbsVolumes(),
    LogGroups(),
    DatabaseRows(),
)
PLAIN_RETENTION = frozenset({"db_rows"})  # deleted in the run that finds them; never marked


@dataclass(frozen=True)
class Plan:
    survey: Survey | None  # None: the kind could not be listed; its marks are left alone
    due: tuple[Resource, ...]  # marked earlier, past the grace period, still matching
    new: tuple[Resource, ...]  # candidates not marked yet
    waiting: int
    stale: tuple[tuple[str, str], ...]  # marks that no longer match
    error: ItemError | None = None


def clean(
    *,
    aws: AwsGateway,
    db: Database,
    config: Config,
    options: DevCleanupOptions,
    now: datetime,
    run_id: int | None = None,
    dry_run: bool = False,
    override: bool = False,
    audit: JobAudit = not_audited,
) -> DevCleanupReport:
    """One run of the dev cleanup (the scheduler calls it through :func:`jobs.dev_cleanup.run`)."""
    try:
        env = dev_environment(config)
        names = Names(config, env)
        check_targets(config=config, env=env, options=options, names=names)
        _check_account(aws, options)
    except Refused as refusal:
        return _refused_report(
            refusal.message,
            now=now,
            dry_run=dry_run,
            override=override,
            options=options,
            retention_days=config.environments["dev"].retention_days
            if "dev" in config.environments
            else None,
        )

    scope = Scope(
        aws=aws,
        config=config,
        env=env,
        options=options,
        now=now,
        retention=timedelta(days=env.retention_days or 0),
        names=names,
    )
    scope.inventory_loader = lambda: load_inventory(scope)
    marks_store = CleanupMarks(db)
    marks = marks_store.all()
    grace = timedelta(hours=options.mark_grace_hours)
    collectors = [
        c for c in COLLECTORS if c.kind in options.kinds and (c.kind != "db_rows" or options.database)
    ]
    plans = {c.kind: _plan(c, scope, marks, now - grace) for c in collectors}

    over = [_cap_breach(c, plans[c.kind], options.cap(c.kind)) for c in collectors]
    breaches = [b for b in over if b]
    refused = None
    if breaches:
        refused = "; ".join(breaches) + (
            " (overridden)"
            if override
            else ". Nothing was deleted. If that is expected, run `jobs run dev-cleanup --override`."
        )
    may_delete = not dry_run and (not breaches or override)

    reports: list[KindReport] = []
    for collector in collectors:
        plan = plans[collector.kind]
        deleted: list[Resource] = []
        errors: list[ItemError] = list(plan.survey.errors) if plan.survey else []
        if plan.error:
            errors.append(plan.error)
        if dry_run:
            deleted = list(plan.due)
        elif may_delete and plan.due:
            deleted, failures = _delete(collector, scope, plan.due, audit)
            errors.extend(failures)
        if not dry_run and plan.survey is not None and collector.kind not in PLAIN_RETENTION:
            marks_store.drop(keys=[*plan.stale, *((collector.kind, r.id) for r in deleted)])
            marks_store.add(
                marks=[
                    NewMark(kind=collector.kind, resource_id=r.id, detail={"label": r.label})
                    for r in plan.new
                ],
                at=now,
                run_id=run_id,
            )
        reports.append(_kind_report(collector, plan, deleted=deleted, errors=errors, options=options))

    kinds = tuple(reports)
    outcome: Outcome
    if breaches and not override:
        outcome = "succeeded" if dry_run else "refused"
        summary = "refused by the cap: " + "; ".join(breaches)
        if dry_run:
            summary = f"{summary_line(dry_run=True, kinds=kinds)}; a real run would be {summary}"
    else:
        outcome = "succeeded"
        summary = summary_line(dry_run=dry_run, kinds=kinds)
    return DevCleanupReport(
        outcome=outcome,
        summary=summary[:300],
        started_at=now,
        dry_run=dry_run,
        override=override,
        retention_days=env.retention_days,
        grace_hours=options.mark_grace_hours,
        refused=refused,
        kinds=kinds,
        list_limit=options.slack_list_limit,
    )


def _delete(
    collector: Collector, scope: Scope, due: Sequence[Resource], audit: JobAudit
) -> tuple[list[Resource], list[ItemError]]:
    kind, env = collector.kind, scope.env.name
    audit(verb="delete", env=env, args={"kind": kind, "resources": len(due)}, outcome="deleting")
    deleted, failures = collector.delete(scope, due)
    for res in deleted:
        audit(
            verb="delete",
            env=env,
            args={"kind": kind, "resource": res.id, "count": res.count},
            outcome="deleted",
            detail=res.label,
        )
    for failure in failures:
        audit(
            verb="delete",
            env=env,
            args={"kind": kind, "resource": failure.resource},
            outcome="failed",
            detail=failure.message,
        )
    return deleted, failures


def _check_account(aws: AwsGateway, options: DevCleanupOptions) -> None:
    if not options.allowed_account_ids:
        return
    account = str(aws.call("sts", "get_caller_identity").get("Account", ""))
    if account not in options.allowed_account_ids:
        raise Refused(
            f"The bot is running in AWS account {account}, which is not in "
            "jobs.options.dev-cleanup.allowed_account_ids; the dev cleanup refuses to start."
        )


def _plan(
    collector: Collector, scope: Scope, marks: dict[tuple[str, str], Mark], due_before: datetime
) -> Plan:
    try:
        survey = collector.survey(scope)
    except (ClientError, AwsUnavailable, BotError, SQLAlchemyError) as exc:
        message = exc.message if isinstance(exc, BotError) else describe_error(exc)
        if isinstance(exc, SQLAlchemyError):
            message = f"the dev database could not be read ({type(exc).__name__})"
        error = ItemError(kind=collector.kind, resource="(listing)", message=message)
        return Plan(survey=None, due=(), new=(), waiting=0, stale=(), error=error)
    if collector.kind in PLAIN_RETENTION:
        return Plan(survey=survey, due=survey.candidates, new=(), waiting=0, stale=())
    current = {r.id: r for r in survey.candidates}
    mine = {rid: m for (kind, rid), m in marks.items() if kind == collector.kind}
    due = tuple(current[rid] for rid, m in mine.items() if rid in current and m.marked_at <= due_before)
    waiting = sum(1 for rid, m in mine.items() if rid in current and m.marked_at > due_before)
    new = tuple(r for r in survey.candidates if r.id not in mine)
    stale = tuple((collector.kind, rid) for rid in mine if rid not in current)
    return Plan(survey=survey, due=due, new=new, waiting=waiting, stale=stale)


def _cap_text(cap: Cap) -> str:
    parts = []
    if cap.max_count is not None:
        parts.append(f"{cap.max_count:,}")
    if cap.max_share is not None:
        parts.append(f"{cap.max_share:.0%} of the total")
    return " and ".join(parts) or "no cap"


def _cap_breach(collector: Collector, plan: Plan, cap: Cap) -> str | None:
    if plan.survey is None:
        return None
    count = sum(r.count for r in plan.due)
    total = plan.survey.total
    if not count:
        return None
    if cap.max_count is not None and count > cap.max_count:
        return f"{collector.label} ({collector.kind}) would delete {count:,}, over the cap of {cap.max_count:,} per run"
    if cap.max_share is not None and total and count / total > cap.max_share:
        return (
            f"{collector.label} ({collector.kind}) would delete {count:,} of {total:,} "
            f"({count / total:.0%}), over the cap of {cap.max_share:.0%}"
        )
    return None


def _kind_report(
    collector: Collector,
    plan: Plan,
    *,
    deleted: Sequence[Resource],
    errors: list[ItemError],
    options: DevCleanupOptions,
) -> KindReport:
    survey = plan.survey
    cap = options.cap(collector.kind)
    deleted_ids = {r.id for r in deleted}
    next_week = (
        ()
        if collector.kind in PLAIN_RETENTION or survey is None
        else tuple(r for r in survey.candidates if r.id not in deleted_ids)
    )
    freed = sum(r.size_bytes for r in deleted)
    return KindReport(
        kind=collector.kind,
        label=collector.label,
        total=survey.total if survey else 0,
        marked=plan.new,
        deleted=tuple(deleted),
        next_week=next_week,
        waiting=plan.waiting,
        dropped=len(plan.stale),
        spared=tuple(sorted((survey.spared if survey else {}).items(), key=lambda kv: (-kv[1], kv[0]))),
        errors=tuple(errors),
        bytes_freed=freed,
        monthly_saving_usd=round(freed / GIB * collector.usd_per_gib_month, 2),
        cap=_cap_text(cap),
        cap_exceeded=_cap_breach(collector, plan, cap) is not None,
        failed=survey is None,
        two_phase=collector.kind not in PLAIN_RETENTION,
    )


def _refused_report(
    message: str,
    *,
    now: datetime,
    dry_run: bool,
    override: bool,
    options: DevCleanupOptions,
    retention_days: int | None,
) -> DevCleanupReport:
    return DevCleanupReport(
        outcome="refused",
        summary=f"refused: {message}"[:300],
        started_at=now,
        dry_run=dry_run,
        override=override,
        retention_days=retention_days,
        grace_hours=options.mark_grace_hours,
        refused=message,
        kinds=(),
        list_limit=options.slack_list_limit,
    )
