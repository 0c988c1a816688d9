"""Dev-database retention against a real PostgreSQL: old rows go in batches, new rows stay."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.config import Config
from bot.render import render_slack, render_text
from bot.store import migrate
from bot.store.db import Database
from jobs.dev_cleanup import DevCleanupOptions, clean
from tests.blockkit import assert_valid_message

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)  # Sunday 03:00 in Los Angeles
OLD_EVENTS, NEW_EVENTS, OLD_SESSIONS, NEW_SESSIONS = 2_500, 700, 30, 5
BATCH = 1_000


@pytest.fixture
def dev_dsn(postgres_server: str) -> Iterator[str]:
    """A throw-away database whose name says dev (the guard wants it), with two tables of old and new rows."""
    admin_url = make_url(postgres_server)
    name = f"menotime_dev_cleanup_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    dsn = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(dsn)
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, body text)")
        )
        conn.execute(text("CREATE SCHEMA app"))
        # A column without a time zone: compared as UTC.
        conn.execute(text("CREATE TABLE app.sessions (id serial PRIMARY KEY, started timestamp NOT NULL)"))
        conn.execute(
            text(
                "INSERT INTO events (created_at, body) SELECT :now - make_interval(days => 31 + g % 200), 'old' "
                "FROM generate_series(1, :n) g"
            ),
            {"now": NOW, "n": OLD_EVENTS},
        )
        conn.execute(
            text(
                "INSERT INTO events (created_at, body) SELECT :now - make_interval(days => g % 30), 'new' "
                "FROM generate_series(1, :n) g"
            ),
            {"now": NOW, "n": NEW_EVENTS},
        )
        conn.execute(
            text("INSERT INTO app.sessions (started) SELECT (:t)::timestamp FROM generate_series(1, :n)"),
            {"t": (NOW - timedelta(days=40)).replace(tzinfo=None), "n": OLD_SESSIONS},
        )
        conn.execute(
            text("INSERT INTO app.sessions (started) SELECT (:t)::timestamp FROM generate_series(1, :n)"),
            {"t": (NOW - timedelta(days=29, hours=23)).replace(tzinfo=None), "n": NEW_SESSIONS},
        )
    engine.dispose()
    yield dsn
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _counts(dsn: str) -> dict[str, int]:
    engine = create_engine(dsn)
    with engine.connect() as conn:
        counts = {
            "old": conn.execute(text("SELECT count(*) FROM events WHERE body = 'old'")).scalar_one(),
            "new": conn.execute(text("SELECT count(*) FROM events WHERE body = 'new'")).scalar_one(),
            "sessions": conn.execute(text("SELECT count(*) FROM app.sessions")).scalar_one(),
        }
    engine.dispose()
    return counts


def _options(dsn: str) -> DevCleanupOptions:
    return DevCleanupOptions.model_validate(
        {
            "kinds": ["db_rows"],
            "database": {
                "dsn": dsn,
                "batch_size": BATCH,
                "tables": [
                    {"table": "events", "column": "created_at"},
                    {"table": "app.sessions", "column": "started"},
                ],
            },
        }
    )


@pytest.fixture
def store(sqlite_url: str) -> Database:
    database = Database(sqlite_url)
    migrate.upgrade(database)
    return database


def test_old_rows_are_deleted_in_batches_and_new_rows_stay(
    dev_dsn: str,
    aws: AwsGateway,
    store: Database,
    config: Config,
) -> None:
    clock = FrozenClock(NOW)

    dry = clean(aws=aws, db=store, config=config, options=_options(dev_dsn), now=clock.now(), dry_run=True)

    assert _counts(dev_dsn) == {"old": OLD_EVENTS, "new": NEW_EVENTS, "sessions": OLD_SESSIONS + NEW_SESSIONS}
    rows = dry.kind("db_rows")
    assert rows.deleted_count == OLD_EVENTS + OLD_SESSIONS and rows.total == OLD_EVENTS + NEW_EVENTS + 35
    assert "would delete 2,530 old database rows" in dry.summary

    report = clean(aws=aws, db=store, config=config, options=_options(dev_dsn), now=clock.now(), run_id=3)

    assert _counts(dev_dsn) == {"old": 0, "new": NEW_EVENTS, "sessions": NEW_SESSIONS}
    rows = report.kind("db_rows")
    by_table = {r.id: r for r in rows.deleted}
    assert by_table["events"].count == OLD_EVENTS and by_table["app.sessions"].count == OLD_SESSIONS
    batches = by_table["events"].handle["batches"]
    assert batches == (1000, 1000, 500) and len(batches) == math.ceil(OLD_EVENTS / BATCH)
    assert all(size <= BATCH for size in batches)
    assert not rows.marked and not rows.next_week, "database rows are plain retention, never marked"
    assert report.outcome == "succeeded" and "deleted 2,530 old database rows" in report.summary
    assert_valid_message(render_slack(report))
    text_report = render_text(report)
    assert "events: 2,500 rows in 3 batch(es)" in text_report
    assert dev_dsn.split("@")[0] not in text_report  # the DSN never reaches a report

    again = clean(aws=aws, db=store, config=config, options=_options(dev_dsn), now=clock.now())
    assert again.kind("db_rows").deleted_count == 0


def test_a_missing_table_is_reported_and_the_other_tables_are_still_cleaned(
    dev_dsn: str,
    aws: AwsGateway,
    store: Database,
    config: Config,
) -> None:
    options = DevCleanupOptions.model_validate(
        {
            "kinds": ["db_rows"],
            "database": {
                "dsn": dev_dsn,
                "tables": [
                    {"table": "no_such_table", "column": "created_at"},
                    {"table": "events", "column": "created_at"},
                ],
            },
        }
    )

    report = clean(aws=aws, db=store, config=config, options=options, now=NOW)

    [error] = report.errors
    assert error.resource == "no_such_table" and error.message == "UndefinedTable: SQLSTATE 42P01"
    assert _counts(dev_dsn)["old"] == 0 and _counts(dev_dsn)["new"] == NEW_EVENTS


def test_a_table_name_that_is_not_an_identifier_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        DevCleanupOptions.model_validate(
            {
                "database": {
                    "dsn": "postgresql+psycopg://u@localhost/menotime_dev",
                    "tables": [{"table": "events; DROP TABLE patients", "column": "created_at"}],
                }
            }
        )
