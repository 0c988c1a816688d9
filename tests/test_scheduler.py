"""The job runner and the leader-elected scheduler, on SQLite and real PostgreSQL, with a frozen clock.

Time-dependent work (lease renewal, take-over, misfire catch-up) is driven through ``tick()`` and
``fire()`` directly; one test lets APScheduler itself fire a job on its thread pool.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config, JobsConfig
from bot.core import Core
from bot.cron import cron_trigger
from bot.errors import BadInput, ConfigError
from bot.job import JobContext, JobSpec
from bot.render import render_slack, render_text
from bot.scheduler import (
    LEADER_KEY,
    JobRunner,
    JobScheduler,
    build_triggers,
    describe_schedule,
    fires_between,
    list_jobs,
)
from bot.scheduler.answers import JobRunResult, JobsListResult
from bot.settings import Settings
from bot.store.changes import Leases
from bot.store.jobruns import JobRuns
from bot.store.models import ChangeLease
from tests.blockkit import assert_valid_message
from tests.conftest import PEOPLE
from tests.fakes.jobs import FakeJobs, NoOptions
from tests.harness import RecordingNotifier, wait_until

OPS = PEOPLE["operations"]
# Sunday 2026-11-29 05:00 PST: two hours after the weekly 03:00 (11:00 UTC) fire.
SUNDAY_0500 = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
SUNDAY_0300 = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
WEEKLY = "0 3 * * sun"
MakeCore = Callable[..., Core]


@pytest.fixture
def fakes() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def sunday() -> FrozenClock:
    return FrozenClock(SUNDAY_0500)


@pytest.fixture
def make_core(
    database_url: str, config: Config, fakes: FakeJobs, notifier: RecordingNotifier, sunday: FrozenClock
) -> Iterator[MakeCore]:
    """A core (its own Database object) over the shared store; several stand for several replicas."""
    built: list[Core] = []

    def make(*, schedules: dict[str, str] | None = None, lease_seconds: int = 60, **extra: object) -> Core:
        jobs_config = JobsConfig(
            schedules=schedules or {}, leader_lease_seconds=lease_seconds, options=extra.pop("options", {})
        )  # type: ignore[arg-type]
        core = build_core(
            Settings(database_url=database_url),
            config=config.model_copy(update={"jobs": jobs_config}),
            clock=sunday,
            notifier=notifier,
            jobs=fakes.specs,
            migrate_schema=not built,
            run_background=lambda work: work(),
        )
        built.append(core)
        return core

    yield make
    for core in built:
        core.close()


def _runs(core: Core, job: str | None = None) -> list:
    return JobRuns(core.db).recent(job=job)


# -- one run -----------------------------------------------------------------------------------------


def test_a_run_is_recorded_reported_to_ops_with_its_files_and_timed(
    make_core: MakeCore, fakes: FakeJobs, notifier: RecordingNotifier
) -> None:
    core = make_core()
    view = JobRunner(core).run("tidy", trigger="manual", dry_run=True, requested_by=OPS)

    assert view is not None and view.outcome == "succeeded" and view.summary == "would remove 3 things"
    [row] = _runs(core, "tidy")
    assert (row.outcome, row.trigger, row.dry_run, row.requested_by) == ("succeeded", "manual", True, OPS)
    assert row.finished_at is not None and row.error is None
    assert row.report["summary"] == "would remove 3 things" and row.report["detail"]["removed"] == [
        "a",
        "b",
        "c",
    ]
    # The job saw what it was asked: a dry run, its validated options, its run id.
    [ctx] = fakes.calls.contexts["tidy"]
    assert ctx.dry_run and ctx.run_id == row.id and ctx.requested_by == OPS

    # Progress: one message, then edited in place; then the report as its own post, the file beside it.
    progress, report = notifier.posts
    assert progress[0] == report[0] == "#menotime-ops"
    assert render_text(progress[1]).startswith("tidy: step 1 of 2")
    assert [(ref, render_text(r).strip()) for ref, r in notifier.updates] == [
        (progress.ref, "tidy: step 2 of 2")
    ]
    assert report[1].headline == "tidy would remove 3 things"
    assert notifier.uploads == [(report.ref, "tidy.png", b"\x89PNG fake", "What tidy saw")]

    metrics = core.metrics.exposition().decode()
    assert 'menotime_job_runs_total{job="tidy",outcome="succeeded",trigger="manual"} 1.0' in metrics
    assert 'menotime_job_seconds_count{job="tidy",outcome="succeeded"} 1.0' in metrics


def test_a_raising_job_is_recorded_failed_and_reported_without_a_traceback(
    make_core: MakeCore, notifier: RecordingNotifier
) -> None:
    core = make_core()
    view = JobRunner(core).run("boom", trigger="manual", requested_by=OPS)

    assert view is not None and view.outcome == "failed"
    [row] = _runs(core, "boom")
    assert (
        row.outcome == "failed" and row.error == "RuntimeError: disk on fire" and row.finished_at is not None
    )
    [(channel, posted, _thread, _ref)] = notifier.posts
    assert channel == "#menotime-ops" and isinstance(posted, JobRunResult)
    text = render_text(posted)
    assert "boom failed: RuntimeError: disk on fire" in text and "Traceback" not in text
    assert "disk on fire" in render_slack(posted)["text"]
    # The job's lease is free again: the next run is not refused.
    assert JobRunner(core).run("boom", trigger="manual").outcome == "failed"


def test_an_aws_error_is_reported_by_its_code_without_account_or_role(
    make_core: MakeCore, notifier: RecordingNotifier
) -> None:
    from botocore.exceptions import ClientError

    def denied(_ctx: object) -> None:
        raise ClientError(
            {
                "Error": {
                    "Code": "AccessDeniedException",
                    "Message": "User: arn:aws:sts::123456789012:assumed-role/menotime-bot/x is not authorized",
                }
            },
            "DescribeImages",
        )

    core = make_core()
    spec = dataclasses.replace(core.jobs[0], name="denied", run=denied)
    view = JobRunner(core, jobs=(*core.jobs, spec)).run("denied", trigger="manual")
    assert view is not None and view.outcome == "failed"
    assert view.summary.startswith("AWS refused: AccessDeniedException")
    shown = " ".join(notifier.texts("#menotime-ops"))
    assert "123456789012" not in shown and "assumed-role" not in shown and "AccessDeniedException" in shown


def test_a_database_error_is_reported_without_its_message(
    make_core: MakeCore, notifier: RecordingNotifier
) -> None:
    def leaky(_ctx: JobContext) -> None:
        raise IntegrityError(
            "INSERT INTO patients ...", {}, Exception("Key (email)=(jane@example.org) exists")
        )

    spec = JobSpec(
        name="leaky", summary="s", env="dev", run=leaky, options_model=NoOptions, options_key="leaky"
    )
    view = JobRunner(make_core(), jobs=(spec,)).run("leaky", trigger="manual")
    assert view.outcome == "failed"
    assert view.error == f"IntegrityError: a database error (run #{view.id}; its message is withheld)"
    assert not any("jane@example.org" in text for text in notifier.texts())


def test_a_second_concurrent_run_is_refused_in_one_line(
    make_core: MakeCore, fakes: FakeJobs, notifier: RecordingNotifier
) -> None:
    core = make_core()
    first: list = []
    worker = threading.Thread(
        target=lambda: first.append(JobRunner(core).run("slow", trigger="manual", requested_by=OPS))
    )
    worker.start()
    assert fakes.started.wait(10)
    try:
        # Another replica (its own Database object) tries the same job meanwhile.
        second = JobRunner(make_core()).run("slow", trigger="manual", requested_by=PEOPLE["admin"])
    finally:
        fakes.release.set()
        worker.join(10)

    assert second is not None and second.outcome == "refused"
    assert "`slow` is already running (run by hand by <@U0OPS>" in second.summary
    assert "\n" not in second.summary and fakes.calls.count("slow") == 1
    assert first[0].outcome == "succeeded"
    outcomes = sorted(r.outcome for r in _runs(core, "slow"))
    assert outcomes == ["refused", "succeeded"]
    assert any("already running" in t for t in notifier.texts("#menotime-ops"))
    assert JobRunner(core).run("slow", trigger="manual").outcome == "succeeded"  # free once finished


def test_unknown_jobs_and_overrides_are_one_clear_line(make_core: MakeCore) -> None:
    runner = JobRunner(make_core())
    with pytest.raises(
        BadInput, match=r"There is no job `tidi`\. Did you mean `tidy`\? Jobs: `tidy`, `boom`"
    ):
        runner.run("tidi", trigger="manual")
    with pytest.raises(BadInput, match="`boom` has no caps to override"):
        runner.run("boom", trigger="manual", override=True)
    assert runner.run("tidy", trigger="manual", override=True).outcome == "succeeded"


def test_bad_options_refuse_the_run_and_name_the_field(make_core: MakeCore, fakes: FakeJobs) -> None:
    core = make_core()
    view = JobRunner(core).run("picky", trigger="manual")
    assert view.outcome == "refused" and view.summary.startswith(
        "bad configuration: jobs.options.picky.bucket"
    )
    assert fakes.calls.count("picky") == 0

    configured = make_core(options={"picky": {"bucket": "b1"}})
    assert JobRunner(configured).run("picky", trigger="manual").outcome == "succeeded"


def test_a_run_left_running_by_a_stopped_bot_is_closed_by_the_next_run(
    make_core: MakeCore, sunday: FrozenClock
) -> None:
    core = make_core()
    JobRuns(core.db).start(
        job="tidy",
        trigger="schedule",
        at=sunday.now() - timedelta(days=7),
        scheduled_for=sunday.now() - timedelta(days=7),
    )
    JobRunner(core).run("tidy", trigger="manual")
    newest, crashed = _runs(core, "tidy")
    assert newest.outcome == "succeeded"
    assert crashed.outcome == "failed" and crashed.summary.startswith("interrupted")


# -- leader lease --------------------------------------------------------------------------------------


def test_only_the_lease_holder_runs_jobs_and_another_takes_over_when_it_lapses(
    make_core: MakeCore, fakes: FakeJobs, sunday: FrozenClock
) -> None:
    a = JobScheduler(make_core(schedules={"tidy": WEEKLY}), holder="replica-a", submit=lambda w: None)
    b = JobScheduler(make_core(schedules={"tidy": WEEKLY}), holder="replica-b", submit=lambda w: None)

    assert a.tick() and not b.tick()
    assert b.fire("tidy", SUNDAY_0300) is None and fakes.calls.count("tidy") == 0
    assert a.fire("tidy", SUNDAY_0300).outcome == "succeeded"

    sunday.advance(seconds=20)  # a renews well within its lease; b still waits
    assert a.tick() and not b.tick()

    sunday.advance(seconds=61)  # a stopped renewing (killed): its lease lapses, b takes over
    assert b.tick() and b.is_leader
    assert not a.tick() and not a.is_leader  # a comes back: it steps down
    assert a.fire("tidy", SUNDAY_0300 + timedelta(days=7)) is None
    assert b.fire("tidy", SUNDAY_0300 + timedelta(days=7)).outcome == "succeeded"
    assert fakes.calls.count("tidy") == 2


def test_a_deleted_lease_row_is_taken_by_the_next_replica_to_tick(make_core: MakeCore) -> None:
    a = JobScheduler(make_core(), holder="replica-a")
    b = JobScheduler(make_core(), holder="replica-b")
    assert a.tick() and not b.tick()
    with a._core.db.session() as session:
        session.execute(delete(ChangeLease).where(ChangeLease.env == LEADER_KEY))
    assert b.tick()
    assert not a.tick()
    assert Leases(b._core.db).get(LEADER_KEY, now=SUNDAY_0500).holder == "replica-b"


def test_a_scheduled_fire_runs_once_even_when_two_replicas_both_think_they_lead(
    make_core: MakeCore, fakes: FakeJobs, sunday: FrozenClock
) -> None:
    a = JobScheduler(make_core(), holder="replica-a", submit=lambda w: None)
    b = JobScheduler(make_core(), holder="replica-b", submit=lambda w: None)
    assert a.tick()
    sunday.advance(seconds=61)
    assert b.tick()  # a's lease lapsed; a has not ticked since, so it still believes it leads
    assert a.is_leader and b.is_leader

    results: list = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(s.fire("tidy", SUNDAY_0300))) for s in (a, b)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)

    assert sorted(r is None for r in results) == [False, True]
    assert fakes.calls.count("tidy") == 1
    runs = _runs(a._core, "tidy")
    assert [(r.outcome, r.scheduled_for) for r in runs] == [("succeeded", SUNDAY_0300)]


# -- misfire ---------------------------------------------------------------------------------------------


def test_a_run_missed_while_stopped_runs_once_on_start_and_not_again(
    make_core: MakeCore, fakes: FakeJobs, sunday: FrozenClock
) -> None:
    first = JobScheduler(make_core(schedules={"tidy": WEEKLY, "boom": "0 9 1 * *"}), submit=lambda w: w())
    assert first.tick()  # becomes leader at 05:00 PT: 03:00's run was missed; boom's last fire is Nov 1
    [run] = _runs(first._core)
    assert (run.job, run.trigger, run.scheduled_for, run.outcome) == (
        "tidy",
        "misfire",
        SUNDAY_0300,
        "succeeded",
    )
    assert first.tick() and fakes.calls.count("tidy") == 1  # still leader: no second catch-up
    first.stop()

    sunday.advance(minutes=30)
    again = JobScheduler(make_core(schedules={"tidy": WEEKLY}), submit=lambda w: w())
    assert again.tick() and again.catch_up() == []
    assert fakes.calls.count("tidy") == 1


def test_a_fire_that_finds_its_job_busy_runs_once_the_job_is_free(
    make_core: MakeCore, fakes: FakeJobs, sunday: FrozenClock
) -> None:
    core = make_core(schedules={"slow": WEEKLY})
    manual: list = []
    worker = threading.Thread(
        target=lambda: manual.append(JobRunner(core).run("slow", trigger="manual", requested_by=OPS))
    )
    worker.start()
    assert fakes.started.wait(10)
    scheduler = JobScheduler(make_core(schedules={"slow": WEEKLY}), submit=lambda w: w())
    try:
        assert scheduler.tick()  # leader; 03:00's fire is due but the by-hand run holds the job
        assert [r.trigger for r in _runs(core, "slow")] == ["manual"]  # postponed, not refused
    finally:
        fakes.release.set()
        worker.join(10)
    fakes.started.clear()
    sunday.advance(seconds=20)
    assert scheduler.tick()  # the next tick: the job is free, the fire runs once
    runs = _runs(core, "slow")
    assert sorted((r.trigger, r.outcome) for r in runs) == [("manual", "succeeded"), ("misfire", "succeeded")]
    assert scheduler.tick() and len(_runs(core, "slow")) == 2  # and only once
    scheduler.stop()


def test_a_run_missed_by_more_than_the_grace_is_not_caught_up(
    make_core: MakeCore, fakes: FakeJobs, sunday: FrozenClock
) -> None:
    sunday.advance(hours=5)  # 10:00 PT: 03:00 is seven hours back, the grace is six
    scheduler = JobScheduler(make_core(schedules={"tidy": WEEKLY}), submit=lambda w: w())
    assert scheduler.tick() and fakes.calls.count("tidy") == 0 and _runs(scheduler._core) == []


def test_a_fire_in_the_repeated_hour_of_the_dst_fall_back_runs_once_and_does_not_hang(
    make_core: MakeCore, fakes: FakeJobs, sunday: FrozenClock
) -> None:
    # Sunday 2026-11-01: 01:30 PT happens at 08:30 UTC (PDT) and again at 09:30 UTC (PST).
    first, second = datetime(2026, 11, 1, 8, 30, tzinfo=UTC), datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    trigger = cron_trigger("30 1 * * 0", "America/Los_Angeles")
    found: list = []
    worker = threading.Thread(
        target=lambda: found.append(
            fires_between(trigger, first - timedelta(hours=2), second + timedelta(hours=2))
        ),
        daemon=True,
    )
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "fires_between looped forever over the fall-back"
    assert [f.astimezone(UTC) for f in found[0]] == [first]

    sunday.advance(seconds=(first + timedelta(minutes=1) - sunday.now()).total_seconds())
    scheduler = JobScheduler(make_core(schedules={"tidy": "30 1 * * 0"}), submit=lambda w: w())
    assert scheduler.tick()  # catches up 01:30 PDT
    sunday.advance(hours=1)  # APScheduler's second 01:30, in PST
    done = threading.Thread(target=scheduler._on_cron, args=("tidy",), daemon=True)
    done.start()
    done.join(5)
    assert not done.is_alive()
    assert fakes.calls.count("tidy") == 1
    assert [r.scheduled_for for r in _runs(scheduler._core, "tidy")] == [first]


# -- APScheduler itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_apscheduler_fires_the_crons_in_pacific_time_and_survives_a_raising_job(
    make_core: MakeCore, fakes: FakeJobs
) -> None:
    core = make_core(schedules={"boom": "0 4 * * 0", "tidy": "30 2 1 * *"}, lease_seconds=30)
    scheduler = JobScheduler(core, submit=lambda w: None).start()
    try:
        assert scheduler.is_leader
        nexts = scheduler.scheduled
        assert set(nexts) == {"boom", "tidy"}
        assert str(nexts["boom"].tzinfo) == "America/Los_Angeles"
        assert (nexts["boom"].weekday(), nexts["boom"].hour) == (6, 4)  # cron's 0 is Sunday
        assert (nexts["tidy"].day, nexts["tidy"].hour, nexts["tidy"].minute) == (1, 2, 30)

        aps = scheduler._aps
        aps.modify_job("job:boom", next_run_time=datetime.now(UTC))
        wait_until(lambda: [r.outcome for r in _runs(core, "boom")] == ["failed"])
        aps.modify_job("job:tidy", next_run_time=datetime.now(UTC))
        wait_until(lambda: [r.outcome for r in _runs(core, "tidy")] == ["succeeded"])
        assert scheduler.is_leader and aps.get_job("scheduler:lease") is not None
    finally:
        scheduler.stop()
    assert Leases(core.db).get(LEADER_KEY, now=SUNDAY_0500) is None  # released on stop


# -- configuration and listing ---------------------------------------------------------------------------


def test_a_schedule_for_an_unknown_job_fails_at_start(make_core: MakeCore, fakes: FakeJobs) -> None:
    with pytest.raises(ConfigError, match=r"jobs\.schedules: unknown job 'dev-cleanupp'; jobs are boom, "):
        build_triggers(JobsConfig(schedules={"dev-cleanupp": WEEKLY}), fakes.specs)
    with pytest.raises(ConfigError, match="unknown job 'nightly'"):
        JobScheduler(make_core(schedules={"nightly": WEEKLY}))


def test_a_scheduled_job_with_bad_options_fails_at_start(make_core: MakeCore) -> None:
    with pytest.raises(ConfigError, match=r"jobs\.options\."):
        JobScheduler(make_core(schedules={"picky": WEEKLY}))  # picky's required option is not given


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 3 * * sun", "Sundays 03:00 PT"),
        ("0 9 * * 1", "Mondays 09:00 PT"),
        ("0 9 1 * *", "the 1st of each month 09:00 PT"),
        ("30 2 * * *", "daily 02:30 PT"),
        ("*/15 * * * *", "cron `*/15 * * * *` (PT)"),
        ("", "not scheduled (run by hand)"),
    ],
)
def test_schedules_read_in_words(expr: str, words: str) -> None:
    assert describe_schedule(expr, "America/Los_Angeles") == words


@pytest.mark.parametrize(("field", "weekday"), [("0", 6), ("7", 6), ("1", 0), ("1-5", 0), ("sun", 6)])
def test_cron_weekday_numbers_mean_what_cron_means(field: str, weekday: int) -> None:
    trigger = cron_trigger(f"0 3 * * {field}", "America/Los_Angeles")
    fire = trigger.get_next_fire_time(None, SUNDAY_0500)  # after Sunday 05:00: next match
    assert fire.weekday() == weekday


def test_jobs_list_shows_schedule_next_and_last_runs(make_core: MakeCore) -> None:
    core = make_core(schedules={"tidy": WEEKLY, "boom": ""})
    JobRunner(core).run("tidy", trigger="manual", dry_run=True, requested_by=OPS)
    JobRunner(core).run("boom", trigger="manual")
    JobScheduler(core, holder="replica-a", submit=lambda w: None).tick()

    result = list_jobs(core)
    assert isinstance(result, JobsListResult) and result.leader == "replica-a"
    tidy = next(j for j in result.jobs if j.name == "tidy")
    assert tidy.next_run == SUNDAY_0300 + timedelta(days=7)
    text = render_text(result)
    assert "schedule  Sundays 03:00 PT; next 2026-12-06 03:00 PST (11:00 UTC)" in text
    assert "last      2026-11-29 05:00 PST (13:00 UTC): succeeded (dry run): would remove 3 things" in text
    assert "Schedules are run by replica replica-a." in text
    assert "failed: RuntimeError: disk on fire" in text and "never run" in text
    assert_valid_message(render_slack(result))
