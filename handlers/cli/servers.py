"""`serve` (HTTP) and `socket` (Socket Mode): the bot talking to Slack, with its workers and scheduler."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import click
import structlog

from bot.core import Core
from bot.logs import configure_logging
from handlers.cli.invocation import friendly, load_settings
from handlers.process import Process, compose
from handlers.sns import warn_if_closed

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger("menotime.cli")


# Connections `serve` holds at once (beyond it: 503). Each may hold a body of up to 1 MiB for up to
# 10 s (handlers/bodies.py), so this bounds what slow or large requests can make the process hold.
MAX_CONNECTIONS = 256


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: PORT, else 3000).")
@friendly
def serve(host: str, port: int | None) -> None:
    """HTTP server: POST /slack/events, GET /healthz, /readyz, /metrics (on METRICS_PORT when set)."""
    import uvicorn

    settings = load_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    port = port or settings.port
    process = compose(
        settings,
        mode="serve",
        migrate_schema=settings.migrate_on_start,
        serve_metrics=not settings.metrics_port,
    )
    assert process.web is not None  # a Slack process has its web app
    warn_if_closed(process.core)  # no SNS topic allow-listed: every alarm is refused until one is
    metrics_server = (
        _serve_metrics(process.core, host=host, port=settings.metrics_port, main_port=port)
        if settings.metrics_port
        else None
    )
    process.recover()
    process.start()
    _exit_on_sigterm()
    try:
        # log_config=None: uvicorn keeps our logging set-up (JSON lines) instead of installing its own.
        uvicorn.run(
            process.web,
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
            log_config=None,
            limit_concurrency=MAX_CONNECTIONS,
        )
    finally:
        if metrics_server is not None:
            metrics_server.should_exit = True
        _shut_down(process)


def _serve_metrics(core: Core, *, host: str, port: int, main_port: int) -> uvicorn.Server:
    """/metrics alone on METRICS_PORT, in a thread of its own, so the public port need not expose it."""
    import time

    import uvicorn

    from bot.errors import ConfigError
    from handlers.web import create_metrics_app

    if port == main_port:
        raise ConfigError(f"METRICS_PORT ({port}) must differ from the port Slack is served on.")
    server = uvicorn.Server(
        uvicorn.Config(
            create_metrics_app(core.metrics),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            log_config=None,
        )
    )
    thread = threading.Thread(target=server.run, name="metrics-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(f"could not serve /metrics on METRICS_PORT {port} (is the port taken?)")
        time.sleep(0.01)
    log.info("metrics_served", port=port)
    return server


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface for /healthz and /metrics.")
@friendly
def socket(host: str) -> None:
    """Slack over Socket Mode (no public URL); health and metrics still served on PORT."""
    import uvicorn
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.errors import ConfigError

    settings = load_settings()
    if not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN (xapp-…) must be set for Socket Mode.")
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    process = compose(
        settings,
        mode="socket",
        migrate_schema=settings.migrate_on_start,
        serve_metrics=not settings.metrics_port,
    )
    assert process.web is not None and process.slack is not None
    warn_if_closed(process.core)  # the queue hears the same topics as POST /sns
    if not settings.sns_queue_url:
        log.warning(
            "socket_mode_without_sqs",
            hint="with no public URL, alarms reach the bot through SQS: set SNS_QUEUE_URL",
        )
    metrics_server = (
        _serve_metrics(process.core, host=host, port=settings.metrics_port, main_port=settings.port)
        if settings.metrics_port
        else None
    )
    process.recover()
    process.start()  # with no public URL, SNS reaches the bot through SQS (SNS_QUEUE_URL)
    health = uvicorn.Server(
        uvicorn.Config(
            process.web, host=host, port=settings.port, log_level="warning", access_log=False, log_config=None
        )
    )
    threading.Thread(target=health.run, name="health-http", daemon=True).start()
    handler = SocketModeHandler(process.slack, settings.slack_app_token.get_secret_value())
    _exit_on_sigterm()
    try:
        handler.start()
    finally:
        handler.close()
        health.should_exit = True
        if metrics_server is not None:
            metrics_server.should_exit = True
        _shut_down(process)


def _exit_on_sigterm() -> None:
    """ECS stops a task with SIGTERM: leave through the ``finally`` blocks (uvicorn re-raises the
    signal after its own graceful shutdown), so the leader lease is released and workers stop."""
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def _shut_down(process: Process) -> None:
    process.stop()
    log.info("shutdown_complete")
