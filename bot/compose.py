"""The core's composition: database, audit trail, AWS gateway, policy, roles and the verbs, built
once from Settings for every mode (serve, socket, console, demo, jobs, CLI)."""

from __future__ import annotations

import time
from collections.abc import Callable

import boto3

from bot.aws import AwsGateway, gateway_from_settings
from bot.clock import Clock, SystemClock
from bot.config import Config, load_config
from bot.core import Core, in_thread
from bot.identity import GroupDirectory, RoleResolver, StaticGroups
from bot.job import JobSpec
from bot.metrics import Metrics
from bot.notify import Notifier, NullNotifier
from bot.outbox import Outbox, OutboxNotifier
from bot.policy import Policy
from bot.settings import Settings
from bot.store import migrate
from bot.store.audit import AuditLog, chain_key
from bot.store.db import Database, Retry
from bot.store.stores import Stores
from bot.verbs import build_registry


def build_core(
    settings: Settings,
    *,
    config: Config | None = None,
    aws: AwsGateway | None = None,
    aws_session: boto3.session.Session | None = None,
    groups: GroupDirectory | None = None,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    notifier: Notifier | None = None,
    queue_posts: Callable[[], None] | None = None,
    run_background: Callable[[Callable[[], None]], None] | None = None,
    sleep: Callable[[float], None] | None = None,
    migrate_schema: bool = False,
    jobs: tuple[JobSpec, ...] = (),
    db_retry: Retry | None = None,
) -> Core:
    """The core, in order: configuration, database (migrated when asked), audit trail, AWS gateway,
    policy and roles, the verbs, the notifier. ``queue_posts``: channel posts go through the outbox
    (a Slack process), and this wakes the outbox's sender when one is queued; else ``notifier``
    posts them (default: nowhere)."""
    if notifier is not None and queue_posts is not None:
        raise ValueError("a core posts through the outbox or through a notifier, not both")
    config = config or load_config(settings.menotime_config)
    audit_key = chain_key(settings)  # a bad key is a ConfigError before anything opens
    db = Database(settings.database_url, retry=db_retry)
    if migrate_schema:
        migrate.upgrade(db)
    clock = clock or SystemClock()
    if queue_posts is not None:
        notifier = OutboxNotifier(Outbox(db, clock), on_enqueue=queue_posts)
    return Core(
        settings=settings,
        config=config,
        db=db,
        audit=AuditLog(db, key=audit_key),
        stores=Stores.over(db),
        aws=aws or gateway_from_settings(settings, aws_session),
        policy=Policy(config),
        roles=RoleResolver(
            config=config,
            groups=groups or StaticGroups(),
            ttl_seconds=settings.group_cache_ttl_seconds,
            max_stale_seconds=settings.group_cache_max_stale_seconds,
        ),
        registry=build_registry(),
        clock=clock,
        metrics=metrics or Metrics(),
        notifier=notifier or NullNotifier(),
        run_background=run_background or in_thread,
        sleep=sleep or time.sleep,
        jobs=tuple(jobs),
    )
