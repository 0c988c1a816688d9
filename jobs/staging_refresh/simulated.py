"""The refresh against the AWS simulator (moto) and a local PostgreSQL standing in for the restored copy.

:func:`prepare_simulated_refresh` gives the simulator what a real account has and the seed does not
(a locked-down security group, the salt secret; moto already keeps an automated snapshot of each
instance it creates) and returns the options that point the copy at a local database.
:func:`demo_refresh` is the demo tour's step: a synthetic MenoTime database, the real anonymizer, the
whole orchestration; without a reachable PostgreSQL it says so and skips.
"""

from __future__ import annotations

import secrets as _random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from botocore.exceptions import ClientError

from bot.aws import AwsGateway, error_code
from bot.clock import Clock
from bot.config import Config
from bot.render import Renderable
from bot.store.db import Database
from jobs.staging_refresh import rds
from jobs.staging_refresh.databases import databases_beside
from jobs.staging_refresh.options import RefreshOptions
from jobs.staging_refresh.report import RefreshReport

SECURITY_GROUP = "menotime-staging-refresh-sg"


def prepare_simulated_refresh(
    gateway: AwsGateway,
    config: Config,
    *,
    now: datetime,
    dsn_for_next: str,
    base: RefreshOptions | None = None,
    shared_server: bool = True,
) -> RefreshOptions:
    """Makes the seeded simulator ready for a refresh and returns the options to run it with (the
    copy's DSN pointing at ``dsn_for_next``). Safe to call more than once.

    ``shared_server``: ``dsn_for_next`` is one database of a shared (test or demo) server, whose other
    databases are not part of the copy: those there now are declared safe (connects to list them).
    One created later still fails the run, as a second database in a real restored copy would."""
    options = base or RefreshOptions()
    source = config.env(options.source_env).rds_instance
    if rds.latest_automated_snapshot(gateway, source) is None:
        _simulate_automated_snapshot(gateway, source, now=now)
    group_id = _locked_down_group(gateway)
    _ensure_secret(gateway, options.salt_secret_id, _random.token_urlsafe(48))
    next_name = f"{config.env(options.target_env).rds_instance}-next"
    beside = databases_beside(dsn_for_next) if shared_server else ()
    return options.model_copy(
        update={
            "security_group_ids": (group_id,),
            "extra_databases_safe": tuple(dict.fromkeys((*options.extra_databases_safe, *beside))),
            "dsn_overrides": {**options.dsn_overrides, next_name: dsn_for_next},
            "poll_seconds": 1.0,
            "wait_minutes": 5.0,
        }
    )


def _simulate_automated_snapshot(gateway: AwsGateway, source: str, *, now: datetime) -> None:
    """AWS takes automated snapshots itself; moto takes one when an instance is created. If it is gone,
    ask the in-process moto for another (there is no API for it)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    backend = rds_backends[DEFAULT_ACCOUNT_ID][gateway.region]
    if source not in backend.databases:
        raise LookupError(f"{source} is not in the in-process simulator")
    backend.create_auto_snapshot(source, f"rds:{source}-{now:%Y-%m-%d-%H-%M}")


def _locked_down_group(gateway: AwsGateway) -> str:
    found = gateway.call(
        "ec2", "describe_security_groups", Filters=[{"Name": "group-name", "Values": [SECURITY_GROUP]}]
    )["SecurityGroups"]
    if found:
        return str(found[0]["GroupId"])
    vpcs = gateway.call("ec2", "describe_vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    params = {"VpcId": vpcs[0]["VpcId"]} if vpcs else {}
    created = gateway.call(
        "ec2",
        "create_security_group",
        GroupName=SECURITY_GROUP,
        Description="restored staging copy: no inbound rule",
        **params,
    )
    return str(created["GroupId"])


def _ensure_secret(gateway: AwsGateway, name: str, value: str) -> None:
    try:
        gateway.call("secretsmanager", "create_secret", Name=name, SecretString=value)
    except ClientError as exc:
        if error_code(exc) != "ResourceExistsException":
            raise


def postgres_unreachable(admin_url: str | None) -> str | None:
    """Why the demo cannot use PostgreSQL at ``admin_url``, or None if it can."""
    if not admin_url:
        return "no PostgreSQL is configured (set TEST_DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres)"
    import psycopg

    try:
        with psycopg.connect(_libpq(admin_url), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable ({type(exc).__name__})"


def demo_refresh(
    *,
    gateway: AwsGateway,
    config: Config,
    db: Database,
    clock: Clock,
    admin_url: str | None,
    patients: int = 200,
    seed: int = 7,
    progress: Callable[[Renderable], object] = lambda _r: None,
) -> RefreshReport:
    """The demo's refresh: a synthetic database in a throw-away PostgreSQL database plays the
    restored copy. Returns a refused report naming why when PostgreSQL is not reachable."""
    why = postgres_unreachable(admin_url)
    if why is not None:
        return RefreshReport(
            status="refused",
            run_id=None,
            headline=f"Staging refresh skipped: it needs PostgreSQL, and {why}.",
        )
    from jobs.staging_refresh.flow import refresh_staging

    assert admin_url is not None
    with synthetic_copy(admin_url, patients=patients, seed=seed) as dsn:
        options = prepare_simulated_refresh(gateway, config, now=clock.now(), dsn_for_next=dsn)
        return refresh_staging(
            db=db,
            aws=gateway,
            clock=clock,
            config=config,
            options=options,
            sleep=lambda _s: None,
            progress=progress,
            requested_by="demo",
        )


@contextmanager
def synthetic_copy(admin_url: str, *, patients: int = 200, seed: int = 7) -> Iterator[str]:
    """A throw-away database on ``admin_url``'s server holding a synthetic MenoTime database: it
    plays the restored prod copy (its DSN is yielded); dropped afterwards."""
    import psycopg

    from jobs.anonymize import create_synthetic

    name = f"menotime_demo_refresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_database(_libpq(admin_url), name)
    try:
        create_synthetic(dsn=dsn, patients=patients, seed=seed)
        yield dsn
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)
