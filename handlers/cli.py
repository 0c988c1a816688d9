"""`menotime-bot`: the core's CLI plus the servers that talk to Slack."""

from __future__ import annotations

import threading

import click

from bot.cli import cli, friendly, load_settings
from bot.logs import configure_logging
from bot.core import Core
from handlers.inbox_worker import InboxWorker
from handlers.sqs import SqsConsumer


@cli.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")  # noqa: S104
@click.option("--port", type=int, default=None, help="Port (default: PORT, else 3000).")
@friendly
def serve(host: str, port: int | None) -> None:
    """HTTP server: POST /slack/events, GET /healthz, /readyz, /metrics."""
    import uvicorn

    from handlers.app import create_app
    from handlers.web import create_web_app

    settings = load_settings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    slack_app, core = create_app(settings, migrate_schema=settings.migrate_on_start)
    worker, consumer = _start_alarm_workers(core)
    # log_config=None: uvicorn keeps our logging set-up (JSON lines) instead of installing its own.
    uvicorn.run(create_web_app(core, slack_app, on_sns_stored=worker.poke), host=host, port=port or settings.port,
                log_level=settings.log_level.lower(), access_log=False, log_config=None)
    if consumer:
        consumer.stop()
    worker.stop()


@cli.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface for /healthz and /metrics.")  # noqa: S104
@friendly
def socket(host: str) -> None:
    """Slack over Socket Mode (no public URL); health and metrics still served on PORT."""
    import uvicorn
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.errors import ConfigError
    from handlers.app import create_app
    from handlers.web import create_web_app

    settings = load_settings()
    if not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN (xapp-…) must be set for Socket Mode.")
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    slack_app, core = create_app(settings, socket_mode=True, migrate_schema=settings.migrate_on_start)
    _start_alarm_workers(core)  # with no public URL, SNS reaches the bot through SQS (SNS_QUEUE_URL)
    health = uvicorn.Server(uvicorn.Config(create_web_app(core, None), host=host, port=settings.port,
                                           log_level="warning", access_log=False, log_config=None))
    threading.Thread(target=health.run, name="health-http", daemon=True).start()
    SocketModeHandler(slack_app, settings.slack_app_token.get_secret_value()).start()


def _start_alarm_workers(core: Core) -> tuple[InboxWorker, SqsConsumer | None]:
    """The inbox worker (stored SNS messages → Slack threads) and, with SNS_QUEUE_URL, the SQS consumer."""
    worker = InboxWorker(core).start()
    consumer = None
    if core.settings.sns_queue_url:
        consumer = SqsConsumer(core, queue_url=core.settings.sns_queue_url, on_stored=worker.poke).start()
    return worker, consumer


def main() -> None:
    cli()
