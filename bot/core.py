"""The composition root of the core: everything a command needs, built once from Settings.

Adapters (Slack, console, tests) call :func:`build_core` and then ``core.service.handle(...)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3

from bot.aws import AwsGateway, gateway_from_settings
from bot.clock import Clock, SystemClock
from bot.commands import Registry
from bot.config import Config, load_config
from bot.identity import GroupDirectory, RoleResolver, StaticGroups
from bot.jobkit import JobSpec
from bot.metrics import Metrics
from bot.notify import Notifier, NullNotifier
from bot.policy import Policy
from bot.service import CommandService
from bot.settings import Settings
from bot.store import migrate
from bot.store.audit import AuditLog, chain_key
from bot.store.db import Database, Retry
from bot.verbs import build_registry


@dataclass
class Core:
    settings: Settings
    config: Config
    db: Database
    audit: AuditLog
    aws: AwsGateway
    policy: Policy
    roles: RoleResolver
    registry: Registry
    clock: Clock
    metrics: Metrics
    notifier: Notifier
    # Work that outlives the command (following a rollout): a daemon thread by default; tests and
    # the demo run it inline. `sleep` paces that work, so tests need not wait.
    run_background: Callable[[Callable[[], None]], None]
    sleep: Callable[[float], None]
    # The scheduled jobs (jobs/), handed in by the composition root: bot/ never imports jobs/.
    jobs: tuple[JobSpec, ...] = ()
    service: CommandService = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.service = CommandService(core=self)

    def close(self) -> None:
        self.db.dispose()


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
    run_background: Callable[[Callable[[], None]], None] | None = None,
    sleep: Callable[[float], None] | None = None,
    migrate_schema: bool = False,
    jobs: tuple[JobSpec, ...] = (),
    db_retry: Retry | None = None,
) -> Core:
    config = config or load_config(settings.menotime_config)
    audit_key = chain_key(settings)  # a bad key is a ConfigError before anything opens
    db = Database(settings.database_url, retry=db_retry)
    if migrate_schema:
        migrate.upgrade(db)
    return Core(
        settings=settings,
        config=config,
        db=db,
        audit=AuditLog(db, key=audit_key),
        aws=aws or gateway_from_settings(settings, aws_session),
        policy=Policy(config),
        roles=RoleResolver(
            config=config,
            groups=groups or StaticGroups(),
            ttl_seconds=settings.group_cache_ttl_seconds,
            max_stale_seconds=settings.group_cache_max_stale_seconds,
        ),
        registry=build_registry(),
        clock=clock or SystemClock(),
        metrics=metrics or Metrics(),
        notifier=notifier or NullNotifier(),
        run_background=run_background or in_thread,
        sleep=sleep or time.sleep,
        jobs=tuple(jobs),
    )


def in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="menotime-background", daemon=True).start()
