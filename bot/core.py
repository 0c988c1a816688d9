"""What a command and a job share: configuration, database, audit trail, AWS, policy, clock.

Built once by :func:`bot.compose.build_core`; a command is answered by
``bot.dispatch.Dispatcher(core=core).handle(...)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from bot.aws import AwsGateway
from bot.clock import Clock
from bot.commands import Registry
from bot.config import Config
from bot.identity import RoleResolver
from bot.job import JobSpec
from bot.metrics import Metrics
from bot.notify import Notifier
from bot.policy import Policy
from bot.settings import Settings
from bot.store.audit import AuditLog
from bot.store.db import Database
from bot.store.stores import Stores


@dataclass
class Core:
    settings: Settings
    config: Config
    db: Database
    audit: AuditLog
    stores: Stores  # the repositories, built once over ``db``
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

    def close(self) -> None:
        self.db.dispose()


def in_thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="menotime-background", daemon=True).start()
