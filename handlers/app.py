"""`create_app(settings)`: the Bolt app and the core it drives. Wiring only; no logic."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt import App, BoltResponse
from slack_sdk import WebClient

from bot.core import Core, build_core
from bot.errors import ConfigError
from bot.identity import SlackGroups
from bot.service import new_request_id
from bot.settings import Settings
from handlers import commands

log = structlog.get_logger("menotime.slack")


def slack_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    if settings.slack_api_url:
        return WebClient(token=token, base_url=settings.slack_api_url.rstrip("/") + "/")
    return WebClient(token=token)


def create_app(settings: Settings, *, core: Core | None = None, **core_kwargs: Any) -> tuple[App, Core]:
    if not settings.slack_signing_secret or not settings.slack_bot_token:
        raise ConfigError("SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN must be set to talk to Slack "
                          "(try `menotime-bot demo` or `menotime-bot console --simulate` without Slack).")
    client = slack_client(settings)
    if core is None:
        core = build_core(settings, groups=SlackGroups(client), **core_kwargs)
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        # A Slack outage must not stop the bot from starting; auth is checked on the first call.
        token_verification_enabled=False,
        raise_error_for_unhandled_request=False,
    )

    @app.middleware
    def request_id(context: dict[str, Any], next: Any) -> BoltResponse:  # noqa: A002 - Bolt's name
        context["request_id"] = new_request_id()
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("slack_handler_error", error=type(error).__name__, exc_info=error)

    commands.register(app, core)
    return app, core
