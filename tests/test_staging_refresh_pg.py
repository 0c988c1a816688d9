"""The staging refresh with real PostgreSQL: its store on both databases, and the real anonymizer
masking a synthetic MenoTime database that stands in for the restored copy (moto plays RDS and ECS)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bot.aws import AwsGateway
from bot.clock import FrozenClock
from bot.config import Config
from bot.render import render_text
from bot.store.db import Database
from bot.store.refresh import RefreshRuns
from jobs.staging_refresh import RefreshOptions, prepare_simulated_refresh, refresh_staging
from jobs.staging_refresh.rds import RUN_TAG
from jobs.staging_refresh.simulated import demo_refresh, postgres_unreachable

anonymize = pytest.importorskip("jobs.anonymize", reason="the anonymization engine is not in this checkout")

STAGING, NEXT = "menotime-staging", "menotime-staging-next"


def test_runs_and_steps_are_kept_on_both_databases(db: Database, clock: FrozenClock) -> None:
    runs = RefreshRuns(db)
    runs.start(run_id="a" * 32, job_run_id=3, now=clock.now(), state={"done": []})
    runs.begin_step(run_id="a" * 32, step="snapshot", now=clock.now())
    clock.advance(seconds=90)
    runs.end_step(
        run_id="a" * 32, step="snapshot", now=clock.now(), outcome="done", detail="rds:menotime-prod-1"
    )
    state = runs.update_state(
        run_id="a" * 32, now=clock.now(), snapshot_id="rds:menotime-prod-1", done=["snapshot"]
    )

    assert state == {"done": ["snapshot"], "snapshot_id": "rds:menotime-prod-1"}
    [unfinished] = runs.unfinished()
    assert (unfinished.step, unfinished.status, unfinished.state) == ("snapshot", "running", state)
    [step] = runs.steps("a" * 32)
    assert (step.step, step.outcome, step.seconds, step.detail) == (
        "snapshot",
        "done",
        90.0,
        "rds:menotime-prod-1",
    )

    runs.finish(run_id="a" * 32, now=clock.now(), status="completed")
    assert runs.unfinished() == []
    finished = runs.get("a" * 32)
    assert finished is not None and finished.status == "completed" and finished.finished_at == clock.now()


@pytest.fixture
def copy_dsn(postgres_server: str) -> Iterator[str]:
    """A database of our own on the test server, playing the restored copy of prod."""
    server = make_url(postgres_server)
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"menotime_refresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Database]:
    from bot.store import migrate

    database = Database(sqlite_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


def _tag(aws: AwsGateway, name: str) -> str | None:
    [instance] = aws.call("rds", "describe_db_instances", DBInstanceIdentifier=name)["DBInstances"]
    return {t["Key"]: t["Value"] for t in instance["TagList"]}.get(RUN_TAG)


def _instances(aws: AwsGateway) -> set[str]:
    return {i["DBInstanceIdentifier"] for i in aws.paginate("rds", "describe_db_instances", "DBInstances")}


def test_the_real_anonymizer_masks_and_verifies_the_copy_before_the_swap(
    seeded_aws: AwsGateway, config: Config, clock: FrozenClock, store: Database, copy_dsn: str
) -> None:
    anonymize.create_synthetic(dsn=copy_dsn, patients=60, seed=11)
    with psycopg.connect(copy_dsn) as conn:
        originals = {row[0] for row in conn.execute("SELECT email FROM patients")}
    options = prepare_simulated_refresh(seeded_aws, config, now=clock.now(), dsn_for_next=copy_dsn)

    report = refresh_staging(
        db=store, aws=seeded_aws, clock=clock, config=config, options=options, sleep=lambda _s: None
    )

    assert report.outcome == "succeeded", report.headline
    assert report.verification_ok is True
    assert (
        report.verification
        and "verified" in report.verification
        and "0 surviving originals" in report.verification
    )
    assert _tag(seeded_aws, STAGING) == report.run_id and NEXT not in _instances(seeded_aws)
    with psycopg.connect(copy_dsn) as conn:
        masked = {row[0] for row in conn.execute("SELECT email FROM patients")}
    assert masked and not masked & originals
    text = render_text(report)
    assert not any(email in text for email in originals)  # nothing from the database in the report


def test_an_unruled_column_in_the_copy_fails_the_refresh_before_any_swap(
    seeded_aws: AwsGateway, config: Config, clock: FrozenClock, store: Database, copy_dsn: str
) -> None:
    anonymize.create_synthetic(dsn=copy_dsn, patients=20, seed=5)
    with psycopg.connect(copy_dsn) as conn:
        conn.execute("ALTER TABLE patients ADD COLUMN mothers_maiden_name text DEFAULT 'Smith'")
    options = prepare_simulated_refresh(seeded_aws, config, now=clock.now(), dsn_for_next=copy_dsn)

    report = refresh_staging(
        db=store, aws=seeded_aws, clock=clock, config=config, options=options, sleep=lambda _s: None
    )

    assert report.outcome == "failed"
    assert report.verification and "patients.mothers_maiden_name" in report.verification
    assert _tag(seeded_aws, STAGING) is None and NEXT not in _instances(seeded_aws)
    with psycopg.connect(copy_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM patients WHERE mothers_maiden_name = 'Smith'"
        ).fetchone() == (20,)


def test_the_demo_step_refreshes_against_the_simulator(
    seeded_aws: AwsGateway, config: Config, clock: FrozenClock, store: Database, postgres_server: str
) -> None:
    shown: list[object] = []

    report = demo_refresh(
        gateway=seeded_aws,
        config=config,
        db=store,
        clock=clock,
        admin_url=postgres_server,
        patients=30,
        progress=shown.append,
    )

    assert report.outcome == "succeeded", report.headline
    assert shown and _tag(seeded_aws, STAGING) == report.run_id
    assert "Verification passed" in render_text(report)


def test_the_demo_step_says_why_it_skips_without_postgresql(
    seeded_aws: AwsGateway, config: Config, clock: FrozenClock, store: Database
) -> None:
    assert (
        postgres_unreachable("postgresql://nobody@127.0.0.1:1/none")
        == "PostgreSQL is not reachable (OperationalError)"
    )

    report = demo_refresh(gateway=seeded_aws, config=config, db=store, clock=clock, admin_url=None)

    assert report.outcome == "refused"
    assert report.headline.startswith(
        "Staging refresh skipped: it needs PostgreSQL, and no PostgreSQL is configured"
    )
    assert NEXT not in _instances(seeded_aws)


# -- other databases on the restored copy --------------------------------------------------------


@pytest.fixture
def extra_database(postgres_server: str) -> Iterator[tuple[str, str]]:
    """A second database on the server playing the copy's instance: (its name, its DSN)."""
    server = make_url(postgres_server).set(drivername="postgresql")
    admin = server.render_as_string(hide_password=False)
    name = f"menotime_refresh_extra_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name, server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_second_database_on_the_copy_fails_the_refresh_before_anything_is_masked(
    seeded_aws: AwsGateway,
    config: Config,
    clock: FrozenClock,
    store: Database,
    copy_dsn: str,
    postgres_server: str,
) -> None:
    anonymize.create_synthetic(dsn=copy_dsn, patients=20, seed=3)
    with psycopg.connect(copy_dsn) as conn:
        originals = {row[0] for row in conn.execute("SELECT email FROM patients")}
    options = prepare_simulated_refresh(seeded_aws, config, now=clock.now(), dsn_for_next=copy_dsn)
    server = make_url(postgres_server).set(drivername="postgresql")
    reports = (
        f"menotime_refresh_reports_{uuid.uuid4().hex[:8]}"  # restored from prod beside the app's database
    )
    with psycopg.connect(server.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{reports}"')
    try:
        report = refresh_staging(
            db=store, aws=seeded_aws, clock=clock, config=config, options=options, sleep=lambda _s: None
        )
    finally:
        with psycopg.connect(server.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{reports}" WITH (FORCE)')

    assert report.outcome == "failed" and "Staging was not swapped" in report.headline
    assert report.verification_ok is False
    assert report.verification and "would not mask" in report.verification and reports in report.verification
    assert _tag(seeded_aws, STAGING) is None and NEXT not in _instances(seeded_aws)
    with psycopg.connect(copy_dsn) as conn:  # the anonymizer never ran
        assert {row[0] for row in conn.execute("SELECT email FROM patients")} == originals


def test_a_second_database_declared_safe_is_left_alone_and_the_refresh_goes_on(
    seeded_aws: AwsGateway,
    config: Config,
    clock: FrozenClock,
    store: Database,
    copy_dsn: str,
    extra_database: tuple[str, str],
) -> None:
    anonymize.create_synthetic(dsn=copy_dsn, patients=20, seed=3)
    name, _dsn = extra_database
    options = prepare_simulated_refresh(
        seeded_aws,
        config,
        now=clock.now(),
        dsn_for_next=copy_dsn,
        base=RefreshOptions(extra_databases_safe=(name,)),
    )
    assert name in options.extra_databases_safe

    report = refresh_staging(
        db=store, aws=seeded_aws, clock=clock, config=config, options=options, sleep=lambda _s: None
    )

    assert report.outcome == "succeeded", report.headline
    assert _tag(seeded_aws, STAGING) == report.run_id


def test_the_postgres_database_counts_only_while_it_holds_data(
    copy_dsn: str, extra_database: tuple[str, str]
) -> None:
    from jobs.staging_refresh.databases import _holds_data, databases_beside, unexpected_databases

    name, extra_dsn = extra_database
    beside = frozenset(databases_beside(copy_dsn))
    assert name in beside and make_url(copy_dsn).database not in beside
    assert unexpected_databases(dsn=copy_dsn, safe=beside) == ()
    assert name in unexpected_databases(dsn=copy_dsn, safe=beside - {name})
    # 'postgres' is every instance's: it only counts when it holds rows somewhere.
    assert _holds_data(extra_dsn) is False
    with psycopg.connect(extra_dsn, autocommit=True) as conn:
        conn.execute("SELECT lo_create(0)")  # a large object is data too
    assert _holds_data(extra_dsn) is True
    with psycopg.connect(extra_dsn, autocommit=True) as conn:
        conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.notes (body text)")
    assert _holds_data(extra_dsn) is True


def test_the_engine_reports_progress_to_the_refresh(copy_dsn: str) -> None:
    from jobs.staging_refresh import anonymize_with_engine

    anonymize.create_synthetic(dsn=copy_dsn, patients=10, seed=2)
    messages: list[str] = []

    result = anonymize_with_engine(dsn=copy_dsn, rules_path=None, salt=b"s" * 32, on_progress=messages.append)

    assert result.ok, result.summary
    assert any(m.startswith("masking ") for m in messages)  # the refresh renews its lock on each


def test_values_the_leak_check_passes_but_of_the_wrong_shape_fail_the_refresh(
    seeded_aws: AwsGateway, config: Config, clock: FrozenClock, store: Database, copy_dsn: str
) -> None:
    """A trigger restored with prod rewrites every email the anonymizer writes: no original survives
    (the leak check passes), but the copy does not hold what the rules promise, so it is never swapped."""
    anonymize.create_synthetic(dsn=copy_dsn, patients=30, seed=4)
    with psycopg.connect(copy_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.email := upper(NEW.email); RETURN NEW; END $$"
        )
        conn.execute("CREATE TRIGGER shout BEFORE UPDATE ON patients FOR EACH ROW EXECUTE FUNCTION shout()")
    options = prepare_simulated_refresh(seeded_aws, config, now=clock.now(), dsn_for_next=copy_dsn)

    report = refresh_staging(
        db=store, aws=seeded_aws, clock=clock, config=config, options=options, sleep=lambda _s: None
    )

    assert report.outcome == "failed" and "Staging was not swapped" in report.headline
    assert report.verification_ok is False and report.verification
    assert "0 surviving originals" in report.verification
    assert (
        "patients.email: 30 of 30 rows look unmasked (expected p<16 hex>@example.invalid)"
        in report.verification
    )
    assert _tag(seeded_aws, STAGING) is None and NEXT not in _instances(seeded_aws)
