"""The HTTP surface: Slack events, SNS, health, readiness and metrics (Starlette under uvicorn).

Every POST body is capped while it is read (handlers.bodies). A Slack request then passes, in this
order, each failure answered with one log line and nothing handed to Bolt: its signature on the
raw bytes (401; a timestamp that is not a number, 400), a body Slack could have sent (400), and
the replay check (a request seen before, or Slack's retry of one: 200, not run, audited).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import structlog
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.request import BoltRequest
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.core import Core
from bot.metrics import Metrics
from bot.service import new_request_id
from bot.store import migrate
from bot.store.replays import SIGNATURE_WINDOW, SlackReplays
from handlers.bodies import BodyLimit
from handlers.sns import sns_endpoint

log = structlog.get_logger("menotime.slack")

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def create_web_app(core: Core, slack_app: App | None, *, on_sns_stored: Callable[[], None] | None = None,
                   serve_metrics: bool = True) -> Starlette:
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
        if secret is None:
            raise ValueError("the Slack endpoint needs SLACK_SIGNING_SECRET")
        routes.append(Route("/slack/events", slack_endpoint(core, slack_app, signing_secret=secret.get_secret_value()),
                            methods=["POST"]))
    return Starlette(routes=routes, middleware=[Middleware(BodyLimit)])


def create_metrics_app(metrics: Metrics) -> Starlette:
    """/metrics alone, for METRICS_PORT."""
    return Starlette(routes=[_metrics_route(metrics)])


def _metrics_route(metrics: Metrics) -> Route:
    return Route("/metrics", lambda _request: Response(metrics.exposition(), media_type=metrics.content_type),
                 methods=["GET"])


# --------------------------------------------------------------------------------------------
# POST /slack/events


class MalformedSlackRequest(Exception):
    """A signed request whose body Slack would not have sent; the message says what is wrong."""


def signed_by_slack(secret: str, *, body: bytes, timestamp: str, signature: str, now: float) -> bool:
    """Slack's v0 scheme on the raw bytes: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``, the
    timestamp within five minutes of now. ``timestamp`` must be digits."""
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW.total_seconds():
        return False
    expected = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("latin-1"))  # header values are latin-1


def check_slack_body(body: bytes, content_type: str) -> None:
    """Raises MalformedSlackRequest unless the body has a shape Slack sends: UTF-8; a JSON object
    (Events API), or a form whose ``payload``, if any, is a JSON object (interactions); an event
    and a click say what they are."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedSlackRequest("the body is not UTF-8") from None
    if content_type.split(";")[0].strip().lower() == "application/json":
        _check_payload(_json_object(text, "the body"))
    else:
        payload = parse_qs(text).get("payload")
        if payload:
            _check_payload(_json_object(payload[0], "payload="))


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedSlackRequest(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedSlackRequest(f"{what} is not a JSON object")
    return value


def _check_payload(payload: dict[str, Any]) -> None:
    if payload.get("type") == "event_callback":
        event = payload.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedSlackRequest("an event_callback without an event")
    elif payload.get("type") == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not all(
                isinstance(a, dict) and isinstance(a.get("action_id"), str) for a in actions):
            raise MalformedSlackRequest("a block_actions payload without actions")


def slack_endpoint(core: Core, slack_app: App, *, signing_secret: str) -> Callable[[Request], Awaitable[Response]]:
    metrics = core.metrics
    replays = SlackReplays(core.db)

    def refuse(status: int, reason: str, **fields: Any) -> Response:
        log.warning("slack_refused", status=status, reason=reason, **fields)
        return PlainTextResponse(reason, status_code=status)

    def audit_replay(bolt_request: BoltRequest, *, timestamp: str, retry: bool) -> None:
        body = bolt_request.body
        event = body.get("event")
        kind = body.get("command") or (event.get("type") if isinstance(event, dict) else None) or body.get("type")
        what = "Slack's retry of a request" if retry else "a signed Slack request"
        core.audit.append(at=core.clock.now(), actor=str(bolt_request.context.user_id or "slack")[:64],
                          source="slack", verb="replay", env=None,
                          args={"kind": str(kind or "unknown")[:64], "slack_timestamp": timestamp},
                          rule="slack-retry" if retry else "slack-replay", outcome="replay",
                          detail=f"{what} received before; answered, not run again", request_id=new_request_id())

    async def answer(request: Request) -> Response:
        body = await request.body()  # at most MAX_BODY_BYTES: BodyLimit read it
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        if timestamp is None or signature is None:
            return refuse(401, "not signed: X-Slack-Signature and X-Slack-Request-Timestamp are required")
        if not _TIMESTAMP.fullmatch(timestamp):
            return refuse(400, "X-Slack-Request-Timestamp is not a Unix time")
        if not signed_by_slack(signing_secret, body=body, timestamp=timestamp, signature=signature, now=time.time()):
            return refuse(401, "invalid signature, or a timestamp more than 5 minutes from now")
        try:
            check_slack_body(body, request.headers.get("content-type", ""))
            bolt_request = to_bolt_request(request, body)
        except MalformedSlackRequest as exc:
            return refuse(400, str(exc))
        except Exception as exc:  # noqa: BLE001 - Bolt's parsing assumed a shape this payload lacks
            return refuse(400, "a signed request of a shape the bot does not handle", error=type(exc).__name__)

        # Slack retries what it thinks was slow, perhaps signed anew: it reached the bot already.
        retry = "x-slack-retry-num" in request.headers
        try:
            copies = await run_in_threadpool(replays.seen_before, timestamp=int(timestamp), signature=signature,
                                             at=core.clock.now())
        except SQLAlchemyError as exc:
            log.error("slack_replay_check_failed", error=type(exc).__name__)
            return PlainTextResponse("could not check the request; try again", status_code=503)
        if copies or retry:
            log.warning("slack_replay_not_run", retry=retry, slack_timestamp=timestamp, copies=copies)
            if copies > 1:
                return Response(status_code=200)  # the first replay is in the trail; a flood is not
            try:
                await run_in_threadpool(audit_replay, bolt_request, timestamp=timestamp, retry=retry)
            except SQLAlchemyError as exc:
                log.error("slack_replay_audit_failed", error=type(exc).__name__)
            return Response(status_code=200)
        # Inline: ack() takes well under a millisecond (the answer runs in a lazy listener's
        # thread), and a second thread hop per request measurably slows every ack.
        return to_starlette_response(slack_app.dispatch(bolt_request))

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        response = await answer(request)
        metrics.ack_seconds.observe(time.perf_counter() - started)
        metrics.slack_requests.labels(status=str(response.status_code)).inc()
        return response

    return endpoint


# --------------------------------------------------------------------------------------------
# GET /readyz


def _readiness(core: Core):  # noqa: ANN202
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
            return False, f"database at migration {current or 'none'}, code expects {head}; run `menotime-bot migrate`"
        return True, "ready"

    async def readyz(_request: Request) -> JSONResponse:
        ok, reason = await run_in_threadpool(check)
        return JSONResponse({"status": "ready" if ok else "not ready", "reason": reason}, status_code=200 if ok else 503)

    return readyz
