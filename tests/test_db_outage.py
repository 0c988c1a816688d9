"""A database outage during a rollout (issue 12, item 5): the follower rides it out and ends the
rollout once PostgreSQL is back, and a rollout nobody follows any more is ended by housekeeping once
its lease expired — without a restart either way.

The outage is real: the test's own scratch database on the PostgreSQL server refuses every
connection (``ALLOW_CONNECTIONS false``) and its backends are terminated, for 10 seconds (the issue's figure)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from slack_sdk import WebClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bot import watch
from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config
from bot.fakes.slack_api import FakeSlack
from bot.identity import StaticGroups
from bot.outbox import Outbox, OutboxNotifier, OutboxSender
from bot.settings import Settings
from bot.simulator import advance_rollouts
from bot.store.db import Retry
from bot.store.deploys import DeployLog
from bot.store.models import ChangeLease
from handlers.workers import build_workers
from tests.conftest import REGION, STATIC_GROUPS, _require_postgres
from tests.harness import wait_until
from tests.test_changes import DEV, _text, make_core, rollout_steps, run  # noqa: F401 - fixtures

OUTAGE_SECONDS = 10.0
# The policy's shape, at test speed: a minute of tries during the rollout, two for the final writes.
FAST_RETRY = Retry(within=60.0, final_within=120.0, first=0.05, longest=0.5)


@pytest.fixture
def scratch_database() -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A database of its own on the PostgreSQL server (others' tests never see the outage), and a
    switch that opens or closes it to every connection, the server's own included."""
    admin_url = make_url(_require_postgres())
    name = f"menotime_outage_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def accept_connections(accept: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(accept).lower()}'))
            if not accept:
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )

    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False), accept_connections
    finally:
        accept_connections(True)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_an_outage_mid_rollout_ends_the_rollout_and_frees_the_environment_without_a_restart(
    scratch_database: tuple[str, Callable[[bool], None]],
    config: Config,
    seeded_aws: AwsGateway,
    clock: FrozenClock,
) -> None:
    url, accept_connections = scratch_database
    ecs_moves = threading.Event()  # until set, ECS has not started the deployment: the rollout runs on
    following = threading.Event()  # the follower has polled ECS and renewed the lease at least once
    pauses: list[float] = []
    followers: list[threading.Thread] = []

    def poll_pause(seconds: float) -> None:
        if threading.current_thread().name == "follower":
            pauses.append(seconds)
            if len(pauses) == 2:  # poll, pause, renew the lease, poll, and here again
                following.set()
        time.sleep(0.05)
        if ecs_moves.is_set():
            advance_rollouts(region=REGION, envs=tuple(config.environments.values()), at=clock.now())

    def in_thread(work: Callable[[], None]) -> None:
        followers.append(threading.Thread(target=work, name="follower", daemon=True))
        followers[-1].start()

    core = build_core(
        Settings(database_url=url),
        config=config,
        aws=seeded_aws,
        groups=StaticGroups(STATIC_GROUPS),
        clock=clock,
        migrate_schema=True,
        run_background=in_thread,
        sleep=poll_pause,
        db_retry=FAST_RETRY,
    )
    core.notifier = OutboxNotifier(
        Outbox(core.db, clock)
    )  # as serve runs: every Slack message goes through the db
    try:
        assert run(core, DEV, "deploy dev feature-login").outcome == "ok"
        assert following.wait(10), "the follower is not following"  # the outage meets it mid-rollout
        with structlog.testing.capture_logs() as logs:
            accept_connections(False)
            try:
                ecs_moves.set()  # the rollout completes in ECS while the database is down
                time.sleep(OUTAGE_SECONDS)
            finally:
                accept_connections(True)
            followers[0].join(timeout=30)
        assert not followers[0].is_alive(), "the follower is still stuck after the database came back"
        record = DeployLog(core.db).last("dev")
        assert (record.outcome, record.to_revision) == ("completed", 4)
        assert "in flight" not in _text(run(core, DEV, "status dev"))
        # The environment is free at once, not 45 minutes later: the next change is accepted.
        scaled = run(core, DEV, "scale dev 2")
        assert scaled.outcome == "ok", scaled.result
        # And the channel was told how the rollout ended, though the database was down when it did.
        with FakeSlack() as slack:
            OutboxSender(
                db=core.db,
                client=WebClient(token="xoxb-test", base_url=slack.api_url, timeout=5),
                clock=clock,
                metrics=core.metrics,
            ).send_due()
            edits = [
                call.params.get("text", "") + str(call.params.get("blocks", ""))
                for call in slack.calls_to("chat.update")
            ]
        assert edits and "COMPLETED" in edits[-1], edits
        felt = {entry["event"] for entry in logs}
        assert {"rollout_write_deferred", "database_unavailable_retrying"} <= felt, (
            felt
        )  # it did meet the outage
    finally:
        core.close()


def test_a_rollout_whose_follower_died_is_ended_by_housekeeping_once_its_lease_expired(
    make_core: Any, seeded_aws: AwsGateway, clock: FrozenClock
) -> None:
    core = make_core(run_background=lambda work: None)  # the follower dies before its first poll
    assert run(core, DEV, "deploy dev feature-login").outcome == "ok"
    envs = tuple(core.config.environments.values())
    advance_rollouts(region=REGION, envs=envs, at=clock.now())  # ECS starts it, and is slow to finish
    deploys = DeployLog(core.db)
    clock.advance(minutes=46)  # nobody renewed the lease: it expired
    workers = build_workers(core, outbox_wake=None).start()  # as serve runs them; housekeeping starts at once
    try:
        wait_until(
            lambda: deploys.last("dev").outcome != "in_progress", what="housekeeping to end the rollout"
        )
    finally:
        workers.stop()
    record = deploys.last("dev")
    assert record.outcome == "unknown" and "by housekeeping" in record.detail, record
    assert "ECS shows menotime-backend-dev:4 in_progress" in record.detail
    with core.db.session(write=False) as session:
        assert session.execute(select(func.count()).select_from(ChangeLease)).scalar_one() == 0
    # ECS's word, when it comes, still ends it truthfully.
    advance_rollouts(region=REGION, envs=envs, at=clock.now())
    watch.housekeep(core)
    assert deploys.last("dev").outcome == "completed"
    assert run(core, DEV, "scale dev 2").outcome == "ok"
