"""The `/menotime` slash command: acknowledge at once, answer through `response_url` after."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.core import Core
from bot.dispatch import Dispatcher, new_request_id
from handlers.replay import RunOnce
from handlers.respond import send_reply

COMMAND = "/menotime"


def register(app: App, core: Core) -> None:
    once = RunOnce(core)

    def acknowledge(ack: Ack, context: dict[str, Any]) -> None:
        # Slack allows 3 seconds; nothing slow (AWS, the database, group look-ups) happens here.
        ack()

    def answer(body: dict[str, Any], context: dict[str, Any]) -> None:
        if not once.first_time(body, context):
            return  # a replay: acked like the first, never run twice
        request_id = context.get("request_id") or new_request_id()
        reply = Dispatcher(core=core).handle(
            user_id=str(body.get("user_id", "")),
            text=str(body.get("text", "")),
            source="slack",
            request_id=request_id,
        )
        response_url = body.get("response_url")
        if response_url:
            send_reply(str(response_url), reply, request_id=request_id)

    app.command(COMMAND)(ack=acknowledge, lazy=[answer])
