"""Shared fixtures: databases (SQLite and real PostgreSQL), moto-backed AWS, cores, a fake clock.

PostgreSQL comes from TEST_DATABASE_URL. Without it the PostgreSQL half of the suite is skipped
with a message, except under CI (CI=true), where a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import structlog
from moto import mock_aws
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.aws import AwsGateway, new_session
from bot.clock import FrozenClock
from bot.compose import build_core
from bot.config import Config, load_config
from bot.core import Core
from bot.fakes.fixture_files import FIXTURES
from bot.identity import StaticGroups
from bot.settings import Settings
from bot.simulator import SeedReport, autopilot, seed_environments
from bot.store import migrate
from bot.store.db import Database
from tests.harness import RecordingNotifier, TestBot


def pytest_configure(config: pytest.Config) -> None:
    """In CI the recorded payloads are required: without them a third of the alarm tests would skip."""
    if os.environ.get("CI", "").lower() == "true" and not FIXTURES.is_dir():
        raise pytest.UsageError(
            f"CI=true but the recorded AWS and Slack payloads are missing at {FIXTURES} "
            "(set MENOTIME_FIXTURES or put ../shared beside the checkout)"
        )


# For pytest-xdist (`-n 2 --dist loadgroup`, as .ci/run runs the suite): every test that touches the
# PostgreSQL server runs on one worker, one at a time, since the staging-refresh tests list the
# server's databases and must not see another worker's database appear meanwhile. xdist's worker
# turns the mark into a `@postgresql` suffix of the node id in its own collection hook; ours must run
# before it (tryfirst), and `pytest_runtest_setup` fails each grouped test whose id lacks the suffix,
# as it silently did with pytest 9.2 (pytest-xdist 3.8 writes it where pytest 9.2 no longer reads).
_SERVER_MODULES = frozenset(
    {
        "test_anonymize",
        "test_anonymize_cli",
        "test_anonymize_shape",
        "test_staging_refresh",
        "test_staging_refresh_pg",
        "test_dev_cleanup_database",
        "test_db_outage",
        "test_cli",
        # These run the demo's jobs (the CLI's `--simulate`, the demo core): its staging refresh makes
        # a synthetic database on the server, which a refresh test running meanwhile would list.
        "test_jobs_cli",
        "test_jobs_done_when",
    }
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if isinstance(item, pytest.Function) else ""
        if module in _SERVER_MODULES or item.get_closest_marker("postgres") is not None:
            item.add_marker(pytest.mark.xdist_group("postgresql"))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """On an xdist worker with `--dist loadgroup`, a grouped test must carry its group in its id."""
    grouped = item.get_closest_marker("xdist_group") is not None
    if getattr(item.config.option, "loadgroup", False) and grouped and "@" not in item.nodeid:
        pytest.fail(
            "pytest-xdist did not group this PostgreSQL test: it could run on both workers at once "
            "(check the pytest and pytest-xdist versions)",
            pytrace=False,
        )


# Roles used across the tests: one person per role, plus a group-based operator and a nobody.
PEOPLE = {
    "viewer": "U0VIEWER",
    "developer": "U0DEV",
    "qa": "U0QA",
    "oncall": "U0ONCALL1",
    "operations": "U0OPS",
    "release_manager": "U0RELMGR",
    "admin": "U0ADMIN",
}
GROUP_MEMBER = "U0GROUPDEV"
NOBODY = "U0NOBODY"
DEV_GROUP = "S0DEVS"

TEST_ROLES = {
    "roles": {
        **{role: {"users": [user]} for role, user in PEOPLE.items()},
        "developer": {"users": [PEOPLE["developer"]], "groups": [DEV_GROUP]},
    }
}

STATIC_GROUPS = {DEV_GROUP: {GROUP_MEMBER}}
REGION = "us-west-1"
Platform = tuple[AwsGateway, SeedReport]


def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS, moto, Slack or bot setting of the developer's shell may steer a test."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "MOTO_", "SLACK_")) or name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    # moto's EC2 (which RDS touches) would otherwise build thousands of default AMIs per mock (~1 s).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _scrub_environment(monkeypatch)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    # A CLI test configures logging for the process (as the CLI does): undo it for the next test.
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level


def moto_session() -> boto3.session.Session:
    return new_session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


def postgres_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


def _require_postgres() -> str:
    url = postgres_url()
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("TEST_DATABASE_URL is not set: CI requires PostgreSQL (see .ci/run)")
    pytest.skip(
        "PostgreSQL tests skipped: set TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away database on the PostgreSQL server, dropped at the end of the session."""
    url = make_url(_require_postgres())
    name = f"menotime_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at TEST_DATABASE_URL is not usable: {exc}")
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL is not usable: {type(exc).__name__}")
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage test runs twice: on a fresh SQLite file and on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("postgres_server")
    _reset_postgres(url)
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


@pytest.fixture
def clock() -> FrozenClock:
    # A Tuesday, 10:00 in Los Angeles: inside the prod change window.
    return FrozenClock(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))


@pytest.fixture
def config() -> Config:
    return load_config(overrides=TEST_ROLES)


@pytest.fixture
def aws() -> Iterator[AwsGateway]:
    """An empty moto, in-process."""
    with mock_aws():
        yield AwsGateway(session=moto_session(), region=REGION)


@pytest.fixture
def seeded(aws: AwsGateway, config: Config, clock: FrozenClock) -> SeedReport:
    """moto seeded with the three environments of the seed (for tests that change it), their
    first rollouts completed a week before the tests' clock."""
    return seed_environments(aws, config, at=clock.now() - timedelta(days=7))


@pytest.fixture
def seeded_aws(aws: AwsGateway, seeded: SeedReport) -> AwsGateway:
    return aws


@pytest.fixture(scope="class")
def platform() -> Iterator[Platform]:
    """One seeded moto shared by the read-only tests of a class (seeding is the slow part)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _scrub_environment(monkeypatch)
        with mock_aws():
            gateway = AwsGateway(session=moto_session(), region=REGION)
            yield (
                gateway,
                seed_environments(
                    gateway, load_config(overrides=TEST_ROLES), at=datetime(2026, 11, 17, 18, 0, tzinfo=UTC)
                ),
            )


@pytest.fixture
def core(sqlite_url: str, config: Config, seeded_aws: AwsGateway, clock: FrozenClock) -> Iterator[Core]:
    built = build_core(
        Settings(database_url=sqlite_url),
        config=config,
        aws=seeded_aws,
        groups=StaticGroups(STATIC_GROUPS),
        clock=clock,
        migrate_schema=True,
    )
    yield built
    built.close()


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def testbot(
    sqlite_url: str, config: Config, seeded_aws: AwsGateway, clock: FrozenClock, notifier: RecordingNotifier
) -> Iterator[TestBot]:
    """The whole bot on a seeded moto and a fresh SQLite file; work that outlives an answer (a
    rollout, a job) runs before the answer returns."""
    built = build_core(
        Settings(database_url=sqlite_url),
        config=config,
        aws=seeded_aws,
        groups=StaticGroups(STATIC_GROUPS),
        clock=clock,
        migrate_schema=True,
        notifier=notifier,
        run_background=lambda work: work(),
        sleep=autopilot(region=REGION, envs=tuple(config.environments.values()), pause=0.0, clock=clock),
    )
    yield TestBot(core=built, notifier=notifier)
    built.close()
