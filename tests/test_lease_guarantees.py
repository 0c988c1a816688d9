"""The lease's guarantees (one row per environment, job or scheduler leader, on SQLite and PostgreSQL):
what only its holder may do, what an incident rollback may take over, an expired lease dropped, and
the scheduler giving up leadership when it stops or cannot read the lease."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.clock import FrozenClock
from bot.errors import PolicyViolation
from bot.scheduler import LEADER_KEY, JobRunner, JobScheduler, job_lease_key
from bot.store.changes import Leases
from bot.store.db import Database
from bot.store.jobruns import JobRuns
from tests.conftest import PEOPLE
from tests.fakes.jobs import FakeJobs
from tests.harness import wait_until
from tests.test_scheduler import SUNDAY_0500, MakeCore, fakes, make_core, sunday  # noqa: F401

# Tuesday 2026-11-24 10:00 PST.
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
TTL = timedelta(minutes=45)
OPS = PEOPLE["operations"]


def take(leases: Leases, env: str, holder: str, action: str = "deploy", **kw: object) -> None:
    leases.acquire(env=env, holder=holder, action=action, user="U0RELMGR", now=NOW, ttl=TTL, **kw)  # type: ignore[arg-type]


# -- an incident rollback and the deploy it undoes ----------------------------------------------------


def test_an_incident_rollback_takes_over_the_lease_of_the_deploy_it_undoes(db: Database) -> None:
    leases = Leases(db)
    take(leases, "prod", "deploy-1")
    lease = leases.acquire(
        env="prod",
        holder="rollback-1",
        action="rollback",
        user="U0ONCALL1",
        now=NOW + timedelta(minutes=5),
        ttl=TTL,
        preempt=("deploy",),
    )
    assert (lease.holder, lease.action) == ("rollback-1", "rollback")
    current = leases.get("prod", now=NOW + timedelta(minutes=6))
    assert current is not None and (current.holder, current.action) == ("rollback-1", "rollback")
    assert not leases.release(env="prod", holder="deploy-1")  # the deploy no longer holds it


def test_only_the_actions_named_are_taken_over(db: Database) -> None:
    leases = Leases(db)
    take(leases, "prod", "scale-1", action="scale")
    with pytest.raises(PolicyViolation) as exc:
        take(leases, "prod", "rollback-1", action="rollback", preempt=("deploy",))
    assert exc.value.message == (
        "Another change is in flight on prod: scale by <@U0RELMGR> since 10:00 PT; try again when it "
        "ends (the lock expires at 10:45 PT)."
    )
    assert leases.get("prod", now=NOW).holder == "scale-1"


def test_a_change_never_takes_its_own_lease_twice(db: Database) -> None:
    leases = Leases(db)
    take(leases, "prod", "deploy-1")
    with pytest.raises(PolicyViolation) as exc:
        take(leases, "prod", "deploy-1", preempt=("deploy",))
    assert exc.value.message == (
        "This change (deploy-1) is already running on prod since 10:00 PT; wait for it to finish."
    )


# -- only the holder, only that lease ------------------------------------------------------------------


def test_release_frees_only_the_named_lease_of_its_holder(db: Database) -> None:
    leases = Leases(db)
    take(leases, "dev", "replica-a")
    take(leases, "prod", "replica-a")
    assert not leases.release(env="dev", holder="replica-b")
    assert leases.release(env="dev", holder="replica-a")
    assert leases.get("dev", now=NOW) is None
    assert leases.get("prod", now=NOW).holder == "replica-a"
    assert not leases.release(env="dev", holder="replica-a")  # already gone


def test_renew_extends_only_the_named_lease_of_its_holder(db: Database) -> None:
    leases = Leases(db)
    take(leases, "dev", "replica-a")
    take(leases, "prod", "replica-a")
    later = NOW + timedelta(minutes=30)
    assert not leases.renew(env="dev", holder="replica-b", now=later, ttl=TTL)
    assert leases.renew(env="dev", holder="replica-a", now=later, ttl=TTL)
    after_first_expiry = NOW + TTL + timedelta(minutes=1)
    assert leases.get("dev", now=after_first_expiry).expires_at == later + TTL
    assert leases.get("prod", now=after_first_expiry) is None


def test_an_expired_lease_is_dropped_and_a_live_or_renewed_one_kept(db: Database) -> None:
    leases = Leases(db)
    take(leases, "dev", "follower-1")
    take(leases, "prod", "follower-2")
    take(leases, "staging", "follower-3")
    assert not leases.drop_expired(env="dev", now=NOW + TTL - timedelta(seconds=1))
    assert leases.renew(env="prod", holder="follower-2", now=NOW + TTL - timedelta(minutes=1), ttl=TTL)

    expired = NOW + TTL
    assert leases.drop_expired(env="dev", now=expired)
    assert not leases.drop_expired(env="prod", now=expired)  # renewed meanwhile: kept
    assert not leases.drop_expired(env="dev", now=expired)  # nothing left to drop
    assert leases.get("prod", now=expired).holder == "follower-2"
    # Another environment's expired lease is not dropped with it: its holder may still renew it.
    assert leases.renew(env="staging", holder="follower-3", now=expired, ttl=TTL)
    take(leases, "dev", "next")  # free again
    assert leases.get("dev", now=NOW).holder == "next"


# -- a job already running -----------------------------------------------------------------------------


def test_a_job_running_says_how_it_was_started_by_whom_and_since_when(make_core: MakeCore) -> None:
    core = make_core()
    runner = JobRunner(core)
    assert runner.running_message("tidy") is None
    leases = Leases(core.db)
    since = SUNDAY_0500 - timedelta(minutes=3)
    leases.acquire(
        env=job_lease_key("tidy"), holder="x", action="schedule", user="schedule", now=since, ttl=TTL
    )
    assert runner.running_message("tidy") == (
        "`tidy` is already running (scheduled run, since 04:57 PT); "
        "wait for its report before starting it again."
    )
    leases.acquire(env=job_lease_key("slow"), holder="y", action="manual", user=OPS, now=since, ttl=TTL)
    assert runner.running_message("slow") == (
        "`slow` is already running (run by hand by <@U0OPS>, since 04:57 PT); "
        "wait for its report before starting it again."
    )


# -- the scheduler's leadership ----------------------------------------------------------------------


def test_a_stopped_scheduler_hands_over_leadership_at_once(make_core: MakeCore) -> None:
    a = JobScheduler(make_core(), holder="replica-a", submit=lambda w: None)
    b = JobScheduler(make_core(), holder="replica-b", submit=lambda w: None)
    assert a.tick() is True and b.tick() is False
    a.stop()
    assert a.is_leader is False
    assert b.tick() is True  # no waiting for a's lease to lapse
    assert Leases(b._core.db).get(LEADER_KEY, now=SUNDAY_0500).holder == "replica-b"


def test_stopping_does_not_wait_for_a_running_job(make_core: MakeCore, fakes: FakeJobs) -> None:
    core = make_core(schedules={"slow": "0 0 1 1 *"})
    scheduler = JobScheduler(core).start()
    try:
        scheduler._aps.modify_job("job:slow", next_run_time=datetime.now(UTC))
        assert fakes.started.wait(10)
        stopping = threading.Thread(target=scheduler.stop)
        stopping.start()
        stopping.join(5)
        assert not stopping.is_alive(), "stop() waited for the running job"
        assert scheduler.scheduled == {} and scheduler.is_leader is False
    finally:
        fakes.release.set()
    wait_until(lambda: [r.outcome for r in JobRuns(core.db).recent(job="slow")] == ["succeeded"])


def test_a_leader_that_cannot_read_the_lease_stops_scheduling_until_it_can(
    make_core: MakeCore, fakes: FakeJobs, sunday: FrozenClock
) -> None:
    core = make_core()
    scheduler = JobScheduler(core, holder="replica-a", submit=lambda w: None)
    assert scheduler.tick() is True
    with core.db.session() as session:
        session.execute(text("ALTER TABLE change_leases RENAME TO change_leases_away"))
    try:
        assert scheduler.tick() is False
        assert scheduler.is_leader is False
        assert scheduler.fire("tidy", SUNDAY_0500 - timedelta(hours=2)) is None
        assert fakes.calls.count("tidy") == 0
    finally:
        with core.db.session() as session:
            session.execute(text("ALTER TABLE change_leases_away RENAME TO change_leases"))
    sunday.advance(seconds=20)
    assert scheduler.tick() is True  # its own lease, still unexpired, renewed
