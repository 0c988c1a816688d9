"""The HTTP surface: Slack events, SNS, health, readiness and metrics (Starlette under uvicorn).

Every POST body is capped while it is read (handlers.bodies). A Slack request then passes, in this
order, each failure answered with one log line and nothing handed to Bolt: its signature on the
raw bytes (401; a timestamp that is not a number, 400), a body Slack could have sent as Bolt
parses it (400). Anything Bolt raises is a 400 too. Slack's unsigned ``ssl_check`` is answered 200
and nothing runs. Whether a signed request ran before is checked where its work starts
(handlers/replay.py), so no database write stands before the ack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import structlog
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.request import BoltRequest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.core import Core
from bot.metrics import Metrics
from bot.store import migrate
from bot.store.replays import SIGNATURE_WINDOW
from handlers.bodies import BodyLimit
from handlers.replay import SIGNED
from handlers.sns import sns_endpoint

log = structlog.get_logger("menotime.slack")

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def create_web_app(
    core: Core,
    slack_app: App | None,
    *,
    on_sns_stored: Callable[[], None] | None = None,
    serve_metrics: bool = True,
) -> Starlette:
    """The app on PORT. ``serve_metrics=False`` when /metrics has a port of its own (METRICS_PORT)."""
    routes = [
        Route("/healthz", lambda _request: JSONResponse({"status": "ok"}), methods=["GET"]),
        Route("/readyz", _readiness(core), methods=["GET"]),
        Route("/sns", sns_endpoint(core, on_stored=on_sns_stored), methods=["POST"]),
    ]
    if serve_metrics:
        routes.append(_metrics_route(core.metrics))
    if slack_app is not None:
        secret = core.settings.slack_signing_secret
        if secret is None or not secret.get_secret_value():
            raise ValueError("the Slack endpoint needs SLACK_SIGNING_SECRET")
        routes.append(
            Route(
                "/slack/events",
                slack_endpoint(core, slack_app, signing_secret=secret.get_secret_value()),
                methods=["POST"],
            )
        )
    return Starlette(routes=routes, middleware=[Middleware(BodyLimit)])


def create_metrics_app(metrics: Metrics) -> Starlette:
    """/metrics alone, for METRICS_PORT."""
    return Starlette(routes=[_metrics_route(metrics)])


def _metrics_route(metrics: Metrics) -> Route:
    return Route(
        "/metrics",
        lambda _request: Response(metrics.exposition(), media_type=metrics.content_type),
        methods=["GET"],
    )


# --------------------------------------------------------------------------------------------
# POST /slack/events


class MalformedSlackRequest(Exception):
    """A signed request whose body Slack would not have sent; the message says what is wrong."""


def signed_by_slack(secret: str, *, body: bytes, timestamp: str, signature: str, now: float) -> bool:
    """Slack's v0 scheme on the raw bytes: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``, the
    timestamp within five minutes of now. ``timestamp`` must be digits."""
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW.total_seconds():
        return False
    expected = (
        "v0="
        + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    )
    return hmac.compare_digest(expected.encode(), signature.encode("latin-1"))  # header values are latin-1


_OBJECTS = ("view", "user", "team", "container", "channel")  # objects whenever Slack sends them
_SSL_CHECK_MAX_BYTES = 512


def is_ssl_check(body: bytes) -> bool:
    """Slack's unsigned certificate check of the slash-command URL: a short form of ``ssl_check=1``
    and perhaps ``token=``, nothing else (Bolt answers it without a signature too)."""
    if len(body) > _SSL_CHECK_MAX_BYTES:
        return False
    try:
        fields = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    names = [name for name, _value in fields]
    return (
        dict(fields).get("ssl_check") == "1"
        and len(names) == len(set(names))
        and set(names) <= {"ssl_check", "token"}
    )


def parse_slack_request(request: Request, body: bytes) -> BoltRequest:
    """The signed request as Bolt sees it, or MalformedSlackRequest saying what is wrong."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedSlackRequest("the body is not UTF-8") from None
    try:
        bolt_request = to_bolt_request(request, body)
    except json.JSONDecodeError:
        raise MalformedSlackRequest("the body (or its payload=) is not JSON") from None
    except Exception as exc:  # noqa: BLE001 - Bolt's parsing assumed a shape this body lacks
        raise MalformedSlackRequest(
            f"a body of a shape the bot does not handle ({type(exc).__name__})"
        ) from None
    check_slack_body(bolt_request.body)
    return bolt_request


def check_slack_body(body: Any) -> None:
    """Raises MalformedSlackRequest unless ``body``, Bolt's own parse of the request (JSON for a body
    starting with ``{`` whatever its Content-Type; else the form, or its last ``payload=`` as JSON),
    has a shape Slack sends: an object whose user, team, channel, container and view are objects;
    an event with a type; a click with actions; a view submission with its view."""
    if not isinstance(body, dict):
        raise MalformedSlackRequest("the body (or its payload=) is not a JSON object")
    for key in _OBJECTS:
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise MalformedSlackRequest(f"{key} is not an object")
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedSlackRequest("an event_callback without an event")
    elif kind == "block_actions":
        actions = body.get("actions")
        if (
            not isinstance(actions, list)
            or not actions
            or not all(isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions)
        ):
            raise MalformedSlackRequest("a block_actions payload without actions")
    elif kind in ("view_submission", "view_closed") and not isinstance(body.get("view"), dict):
        raise MalformedSlackRequest(f"a {kind} payload without a view")


def slack_endpoint(
    core: Core, slack_app: App, *, signing_secret: str
) -> Callable[[Request], Awaitable[Response]]:
    metrics = core.metrics

    def refuse(status: int, reason: str, **fields: Any) -> Response:
        log.warning("slack_refused", status=status, reason=reason, **fields)
        return PlainTextResponse(reason, status_code=status)

    async def answer(request: Request) -> Response:
        body = await request.body()  # at most MAX_BODY_BYTES: BodyLimit read it
        if is_ssl_check(body):
            return Response(status_code=200)  # Slack checking the certificate, unsigned: nothing runs
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if timestamp is None or signature is None:
            return refuse(401, "not signed: X-Slack-Signature and X-Slack-Request-Timestamp are required")
        if not _TIMESTAMP.fullmatch(timestamp):
            return refuse(400, "X-Slack-Request-Timestamp is not a Unix time")
        if not signed_by_slack(
            signing_secret, body=body, timestamp=timestamp, signature=signature, now=time.time()
        ):
            return refuse(401, "invalid signature, or a timestamp more than 5 minutes from now")
        try:
            bolt_request = parse_slack_request(request, body)
        except MalformedSlackRequest as exc:
            return refuse(400, str(exc))

        # Whether this request ran before is the listener's question (handlers/replay.py): asked here,
        # a database write would stand between every request and its ack.
        bolt_request.context[SIGNED] = [timestamp, signature, "x-slack-retry-num" in request.headers]
        # Inline: ack() takes well under a millisecond (the answer runs in a lazy listener's
        # thread), and a second thread hop per request measurably slows every ack.
        try:
            return to_starlette_response(slack_app.dispatch(bolt_request))
        except Exception as exc:  # noqa: BLE001 - Bolt gave up on a body it parsed: the sender's, not ours
            return refuse(
                400, "a signed request of a shape the bot does not handle", error=type(exc).__name__
            )

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        response = await answer(request)
        metrics.ack_seconds.observe(time.perf_counter() - started)
        metrics.slack_requests.labels(status=str(response.status_code)).inc()
        return response

    return endpoint


# --------------------------------------------------------------------------------------------
# GET /readyz


def _readiness(core: Core) -> Callable[[Request], Awaitable[JSONResponse]]:
    def check() -> tuple[bool, str]:
        try:
            core.db.ping()
        except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
            return False, f"database unreachable ({type(exc).__name__})"
        try:
            current, head = migrate.current_revision(core.db), migrate.head_revision(core.db)
        except Exception as exc:  # noqa: BLE001
            return False, f"cannot read the migration state ({type(exc).__name__})"
        if current != head:
            return (
                False,
                f"database at migration {current or 'none'}, code expects {head}; run `menotime-bot migrate`",
            )
        return True, "ready"

    async def readyz(_request: Request) -> JSONResponse:
        ok, reason = await run_in_threadpool(check)
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "reason": reason}, status_code=200 if ok else 503
        )

    return readyz
