"""The HTTP surface: Slack events, health, readiness and metrics (Starlette under uvicorn)."""

from __future__ import annotations

import time
from collections.abc import Callable

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core import Core
from bot.store import migrate
from handlers.sns import sns_endpoint


def create_web_app(core: Core, slack_app: App | None, *, on_sns_stored: Callable[[], None] | None = None) -> Starlette:
    metrics = core.metrics
    routes = [
        Route("/healthz", lambda _request: JSONResponse({"status": "ok"}), methods=["GET"]),
        Route("/readyz", _readiness(core), methods=["GET"]),
        Route("/metrics", lambda _request: Response(metrics.exposition(), media_type=metrics.content_type),
              methods=["GET"]),
        Route("/sns", sns_endpoint(core, on_stored=on_sns_stored), methods=["POST"]),
    ]
    if slack_app is not None:

        async def slack_events(request: Request) -> Response:
            started = time.perf_counter()
            body = await request.body()
            # Inline: verification and ack() take well under a millisecond (the answer runs in a lazy
            # listener's thread), and a thread hop per request measurably slows every ack.
            response = to_starlette_response(slack_app.dispatch(to_bolt_request(request, body)))
            metrics.ack_seconds.observe(time.perf_counter() - started)
            metrics.slack_requests.labels(status=str(response.status_code)).inc()
            return response

        routes.append(Route("/slack/events", slack_events, methods=["POST"]))
    return Starlette(routes=routes)


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
