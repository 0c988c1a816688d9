"""Buttons: each one is a `/menotime` line (Confirm → `confirm REQ-…`), run through the same
service as typed commands, so policy is checked again at click time and every click is audited."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.buttons import BUTTONS, RUNBOOK
from bot.core import Core
from bot.dispatch import Dispatcher, new_request_id
from handlers.replay import RunOnce
from handlers.respond import send_reply


def register(app: App, core: Core) -> None:
    once = RunOnce(core)

    def acknowledge(ack: Ack) -> None:
        ack()

    def click(body: dict[str, Any], action: dict[str, Any], context: dict[str, Any]) -> None:
        if not once.first_time(body, context):
            return  # a replayed click: acked, never run twice
        request_id = context.get("request_id") or new_request_id()
        kind = BUTTONS[action["action_id"]]
        # The value came back from Slack inside a signed request, but it is still input: checked.
        line = kind.clicked(str(action.get("value", "")))
        reply = Dispatcher(core=core).handle(
            user_id=str(body.get("user", {}).get("id", "")),
            text=line,
            source="slack-button",
            request_id=request_id,
        )
        if body.get("response_url"):
            send_reply(
                str(body["response_url"]), reply, request_id=request_id, replace_original=kind.replaces
            )

    for action_id in BUTTONS:
        app.action(action_id)(ack=acknowledge, lazy=[click])
    # A link button (the runbook) opens in the browser; Slack still tells the app it was clicked.
    app.action(RUNBOOK)(acknowledge)
