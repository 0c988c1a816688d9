"""`/menotime jobs` through the command service: every role lists, operations runs, the rest are told why."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.answers import ErrorResult
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config, JobsConfig
from bot.core import Core
from bot.dispatch import Dispatcher
from bot.identity import StaticGroups
from bot.render import render_slack, render_text
from bot.scheduler import job_lease_key
from bot.scheduler.answers import JobsListResult, JobStartedResult
from bot.settings import Settings
from bot.store.changes import Leases
from bot.store.jobruns import JobRuns
from tests.blockkit import assert_valid_message
from tests.conftest import NOBODY, PEOPLE, STATIC_GROUPS
from tests.fakes.jobs import FakeJobs
from tests.harness import RecordingNotifier

OPS, DEV, VIEWER = PEOPLE["operations"], PEOPLE["developer"], PEOPLE["viewer"]


@pytest.fixture
def fakes() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def core(
    database_url: str, config: Config, clock: FrozenClock, fakes: FakeJobs, notifier: RecordingNotifier
) -> Iterator[Core]:
    config = config.model_copy(update={"jobs": JobsConfig(schedules={"tidy": "0 3 * * sun"})})
    built = build_core(
        Settings(database_url=database_url),
        config=config,
        groups=StaticGroups(STATIC_GROUPS),
        clock=clock,
        notifier=notifier,
        jobs=fakes.specs,
        migrate_schema=True,
        run_background=lambda work: work(),
    )
    yield built
    built.close()


def handle(core: Core, user: str, line: str):
    return Dispatcher(core=core).handle(user_id=user, text=line, source="test")


@pytest.mark.parametrize("user", [VIEWER, DEV, PEOPLE["qa"], OPS])
def test_every_role_may_list_the_jobs(core: Core, user: str) -> None:
    reply = handle(core, user, "jobs")
    assert reply.outcome == "ok" and isinstance(reply.result, JobsListResult)
    text = render_text(reply.result)
    assert "tidy (dev): the tidy job" in text and "Sundays 03:00 PT; next 2026-11-29 03:00 PST" in text
    assert_valid_message(render_slack(reply.result))


def test_operations_runs_a_job_and_the_report_goes_to_ops(
    core: Core, fakes: FakeJobs, notifier: RecordingNotifier
) -> None:
    reply = handle(core, OPS, "jobs run tidy --dry-run")

    assert reply.outcome == "ok" and isinstance(reply.result, JobStartedResult)
    assert render_text(reply.result).strip() == (
        "@U0OPS started tidy as a dry run (nothing will change); the report will be posted in #menotime-ops."
    )
    assert_valid_message(render_slack(reply.result))
    [ctx] = fakes.calls.contexts["tidy"]
    assert ctx.dry_run and ctx.requested_by == OPS
    [run] = JobRuns(core.db).recent(job="tidy")
    assert (run.trigger, run.outcome, run.dry_run, run.requested_by) == ("manual", "succeeded", True, OPS)
    assert "tidy would remove 3 things" in notifier.texts("#menotime-ops")[-1]
    run_ended, run_started, entry = core.audit.recent(limit=3)  # the command, then the run it started
    assert (entry.verb, entry.env, entry.outcome, entry.rule) == (
        "jobs",
        "dev",
        "allowed",
        "matrix:jobs_run/dev:operations",
    )
    assert [(e.verb, e.outcome, e.actor) for e in (run_started, run_ended)] == [
        ("tidy", "started", OPS),
        ("tidy", "succeeded", OPS),
    ]

    listed = render_text(handle(core, VIEWER, "jobs").result)
    assert "succeeded (dry run): would remove 3 things" in listed


def test_a_developer_may_not_run_a_job_and_nothing_runs(
    core: Core, fakes: FakeJobs, notifier: RecordingNotifier
) -> None:
    reply = handle(core, DEV, "jobs run boom")
    assert reply.outcome == "denied" and isinstance(reply.result, ErrorResult)
    assert reply.result.message.startswith(
        "`jobs` on staging needs the role operations or admin; you have developer."
    )
    assert fakes.calls.count("boom") == 0 and JobRuns(core.db).recent() == [] and notifier.posts == []
    [entry] = core.audit.recent(limit=1)
    assert (entry.verb, entry.env, entry.outcome) == ("jobs", "staging", "denied")


def test_someone_without_a_role_may_not_even_list(core: Core) -> None:
    reply = handle(core, NOBODY, "jobs")
    assert reply.outcome == "denied" and "You have no MenoTime Ops role" in reply.result.message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "jobs run tidi",
            "There is no job `tidi`. Did you mean `tidy`? Jobs: `tidy`, `boom`, `slow`, `picky`, `clusters`.",
        ),
        ("jobs run", "`jobs run` needs a job name: `tidy`, `boom`, `slow`, `picky`, `clusters`."),
        (
            "jobs tidy",
            "`jobs tidy` is not a jobs command: `/menotime jobs` lists the jobs, "
            "`/menotime jobs run <name>` runs one.",
        ),
        (  # a long mistyped word is echoed cut at 40 characters
            "jobs " + "x" * 45,
            f"`jobs {'x' * 40}` is not a jobs command: `/menotime jobs` lists the jobs, "
            "`/menotime jobs run <name>` runs one.",
        ),
        ("jobs --dry-run", "`--dry-run` and `--override` go with `/menotime jobs run <name>`."),
        ("jobs run boom --override", "`boom` has no caps to override; run it without --override."),
    ],
)
def test_bad_jobs_commands_get_one_line_and_run_nothing(
    core: Core, fakes: FakeJobs, line: str, message: str
) -> None:
    reply = handle(core, OPS, line)
    assert reply.outcome in ("invalid", "failed") and reply.result.message == message
    assert sum(fakes.calls.count(s.name) for s in fakes.specs) == 0


def test_a_job_already_running_is_refused_at_once(core: Core, fakes: FakeJobs, clock: FrozenClock) -> None:
    Leases(core.db).acquire(
        env=job_lease_key("tidy"),
        holder="elsewhere",
        action="schedule",
        user="schedule",
        now=clock.now() - timedelta(minutes=3),
        ttl=timedelta(minutes=15),
    )
    reply = handle(core, OPS, "jobs run tidy")
    assert reply.outcome == "failed"
    assert reply.result.message == (
        "`tidy` is already running (scheduled run, since 09:57 PT); "
        "wait for its report before starting it again."
    )
    assert fakes.calls.count("tidy") == 0


def test_a_failing_job_started_from_slack_is_reported_in_ops(core: Core, notifier: RecordingNotifier) -> None:
    reply = handle(core, OPS, "jobs run boom")
    assert reply.outcome == "ok"
    [run] = JobRuns(core.db).recent(job="boom")
    assert run.outcome == "failed" and run.error == "RuntimeError: disk on fire"
    assert "boom failed: RuntimeError: disk on fire" in notifier.texts("#menotime-ops")[-1]


def test_help_shows_jobs_to_every_role(core: Core) -> None:
    viewer = handle(core, VIEWER, "help jobs")
    assert viewer.outcome == "ok" and "jobs [run] [job] [--dry-run] [--override]" in render_text(
        viewer.result
    )
