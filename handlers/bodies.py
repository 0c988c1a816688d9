"""Request bodies read with a cap: whatever a client sends or claims, no more than the cap is held,
for no longer than a few seconds (a body trickled in byte by byte would hold a connection and its
buffer for as long as the client likes).

``BodyLimit`` caps every POST of the app (Slack's payloads are a few KiB, SNS's at most 256 KiB);
an endpoint with a tighter bound reads through ``read_capped`` with its own limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("menotime.http")

MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_SECONDS = (
    10.0  # Slack and SNS send their few KiB at once; a body trickling in longer is an attack
)


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes: refused on its Content-Length
    before any of it is read, else as soon as the stream passes the limit (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: every POST body is read here under ``limit`` (413 and one log line beyond
    it; the connection is closed rather than drained) and handed to the app as read."""

    def __init__(
        self, app: ASGIApp, *, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT_SECONDS
    ) -> None:
        self._app = app
        self._limit = limit
        self._timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(read_capped(Request(scope, receive), self._limit), self._timeout)
        except TimeoutError:
            reason = f"body not received within {self._timeout:g} s"
            log.warning("request_refused", status=408, path=scope["path"][:200], reason=reason)
            await PlainTextResponse(reason, status_code=408, headers={"Connection": "close"})(
                scope, receive, send
            )
            return
        except ClientDisconnect:
            log.info(
                "request_abandoned", path=scope["path"][:200]
            )  # the client went away mid-body: no one to answer
            return
        if body is None:
            reason = f"body larger than {self._limit} bytes"
            log.warning("request_refused", status=413, path=scope["path"][:200], reason=reason)
            refusal = PlainTextResponse(reason, status_code=413, headers={"Connection": "close"})
            await refusal(scope, receive, send)
            return
        await self._app(scope, _replaying(body, receive), send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the client's own messages
    (a disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay
