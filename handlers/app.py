"""`create_app(settings, core=…, client=…)`: the Bolt app over the core it drives. Wiring only; no logic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.core import Core
from bot.dispatch import new_request_id
from bot.errors import ConfigError
from bot.settings import Settings
from handlers import actions, commands
from handlers.replay import RunOnce

log = structlog.get_logger("menotime.slack")


def require_slack(settings: Settings, *, socket_mode: bool) -> str:
    """The bot token, once the settings a Slack process needs are known to be there."""
    if not settings.slack_bot_token or not (settings.slack_signing_secret or socket_mode):
        needed = "SLACK_BOT_TOKEN" if socket_mode else "SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"
        raise ConfigError(
            f"{needed} must be set to talk to Slack "
            "(try `menotime-bot demo` or `menotime-bot console --simulate` without Slack)."
        )
    return settings.slack_bot_token.get_secret_value()


def create_app(settings: Settings, *, core: Core, client: WebClient, socket_mode: bool = False) -> App:
    """The Bolt app: its listeners drive ``core``. Wiring only (handlers/process.py builds it)."""
    token = require_slack(settings, socket_mode=socket_mode)

    def authorize(enterprise_id: str | None, team_id: str | None, **_: Any) -> AuthorizeResult:
        # One workspace, one bot token: no per-request auth.test, so a slow or failing Slack can
        # neither delay the 3-second ack nor turn a command into "please reinstall".
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

    app = App(
        client=client,
        authorize=authorize,
        signing_secret=settings.slack_signing_secret.get_secret_value()
        if settings.slack_signing_secret
        else None,
        # handlers/web.py verifies every signature on the raw bytes before dispatch (the only way in
        # over HTTP); Socket Mode has none. Bolt checking again would cost each ack a second HMAC.
        request_verification_enabled=False,
        raise_error_for_unhandled_request=False,
        # Listeners run inside the request: every one of them acks at once and leaves slow work to
        # a lazy listener. Without this Bolt hands even ack() to its thread pool, behind the answers,
        # and polls for it every 10 ms (bench/ack_latency.py shows p99 six times a bare app's).
        process_before_response=True,
    )

    @app.middleware
    def request_id(context: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
        context["request_id"] = new_request_id()
        return next()

    @app.error
    def on_error(error: Exception, context: dict[str, Any]) -> None:
        # Only the type: a traceback's frames and an error's message can carry the request's
        # values (a message, a response_url). The request id finds the rest in the audit trail.
        log.error(
            "slack_handler_error",
            error=type(error).__name__,
            request_id=context.get("request_id") or new_request_id(),
        )

    once = RunOnce(core)

    @app.event("app_uninstalled")
    @app.event("tokens_revoked")
    def on_revoked(event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        if not once.first_time(body, context):
            return  # Slack's retry of an event already handled
        log.warning("slack_app_access_revoked", event_type=event.get("type"))

    commands.register(app, core)
    actions.register(app, core)
    return app
