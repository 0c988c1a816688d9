"""Request bodies: capped in size and in time, whatever the client sends."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import PlainTextResponse

from handlers.bodies import BodyLimit


def _call(app: Any, messages: list[dict[str, Any]], *, stall: bool) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "POST", "path": "/slack/events", "headers": [], "query_string": b""}

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        if stall:
            await asyncio.sleep(2)  # a client trickling nothing more for far longer than the timeout
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    message = await receive()
    await PlainTextResponse(f"got {len(message['body'])}")(scope, receive, send)


def test_a_body_that_trickles_in_is_refused_408_after_the_timeout() -> None:
    app = BodyLimit(_echo, timeout=0.2)
    sent = _call(app, [{"type": "http.request", "body": b"x" * 10, "more_body": True}], stall=True)
    assert sent and sent[0]["status"] == 408


def test_a_body_sent_at_once_reaches_the_app_whole() -> None:
    app = BodyLimit(_echo, timeout=0.2)
    sent = _call(
        app,
        [
            {"type": "http.request", "body": b"x" * 10, "more_body": True},
            {"type": "http.request", "body": b"y" * 5, "more_body": False},
        ],
        stall=False,
    )
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"got 15"


def test_a_body_over_the_cap_is_refused_413() -> None:
    app = BodyLimit(_echo, limit=8)
    sent = _call(app, [{"type": "http.request", "body": b"x" * 9, "more_body": True}], stall=True)
    assert sent[0]["status"] == 413
