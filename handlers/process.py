"""The composition root: one function builds what a `menotime-bot` process runs, in order —
database, repositories, AWS gateway, notifier, core, Bolt app, web app, workers, scheduler — and
nothing is swapped or patched afterwards. Start-up recovery is its own step, :meth:`Process.recover`.

- ``serve``: the Bolt app over HTTP, the web app (Slack, SNS, health, metrics), the workers and the
  scheduler; channel posts go through the outbox, whose worker is woken by the notifier.
- ``socket``: the same with the Bolt app on Socket Mode and the web app serving SNS and health.
- ``core``: the core alone (console, demo, jobs, the CLI), posting with the notifier it is given.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jobs
from bot.audit_anchor import start_trail
from bot.changes import finish_orphaned_rollouts
from bot.compose import build_core
from bot.core import Core
from bot.identity import SlackGroups
from bot.notify import Notifier
from bot.scheduler import JobScheduler
from bot.settings import Settings
from handlers.app import create_app, require_slack
from handlers.slack_client import slack_client
from handlers.web import create_web_app
from handlers.workers import Workers, build_workers

if TYPE_CHECKING:
    from slack_bolt import App
    from starlette.applications import Starlette

Mode = Literal["serve", "socket", "core"]


@dataclass
class Process:
    """Everything one process runs, built by :func:`compose`; ``start`` and ``stop`` run the threads."""

    core: Core
    slack: App | None = None
    web: Starlette | None = None
    workers: Workers | None = None
    scheduler: JobScheduler | None = None

    def recover(self) -> None:
        """What a process checks and repairs before it serves: the audit trail's key (a key that
        cannot extend the trail stops the start), and the rollouts a previous run was following when
        it stopped (their records end truthfully)."""
        start_trail(audit=self.core.audit, settings=self.core.settings, clock=self.core.clock)
        finish_orphaned_rollouts(self.core)

    def start(self) -> Process:
        if self.workers is not None:
            self.workers.start()
        if self.scheduler is not None:
            self.scheduler.start()  # runs jobs only while this replica holds the leader lease
        return self

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.workers is not None:
            self.workers.stop()
        self.core.close()


def compose(
    settings: Settings,
    *,
    mode: Mode,
    notifier: Notifier | None = None,
    serve_metrics: bool = True,
    **core_parts: Any,
) -> Process:
    """The process of ``mode``. ``core_parts`` are :func:`bot.compose.build_core`'s (configuration,
    AWS gateway, clock, jobs …: tests and the simulator hand theirs in); ``notifier`` only in
    ``core`` mode (a Slack process queues its posts in the outbox). ``serve_metrics=False`` when
    /metrics has a port of its own."""
    core_parts.setdefault("jobs", jobs.all_jobs())  # looked up now: tests swap the list
    if mode == "core":
        return Process(core=build_core(settings, notifier=notifier, **core_parts))
    if notifier is not None:
        raise ValueError("a Slack process posts through the outbox")
    require_slack(settings, socket_mode=mode == "socket")
    client = slack_client(settings)
    outbox_wake = threading.Event()  # set by the notifier when it queues a post; the sender waits on it
    core = build_core(settings, groups=SlackGroups(client), queue_posts=outbox_wake.set, **core_parts)
    slack = create_app(settings, core=core, client=client, socket_mode=mode == "socket")
    workers = build_workers(core, outbox_wake=outbox_wake)
    web = create_web_app(
        core,
        slack if mode == "serve" else None,
        on_sns_stored=workers.inbox.poke,
        serve_metrics=serve_metrics,
    )
    return Process(core=core, slack=slack, web=web, workers=workers, scheduler=JobScheduler(core))
