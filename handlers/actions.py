"""Buttons: each one is a `/menotime` line (Confirm → `confirm REQ-…`), run through the same
service as typed commands, so policy is checked again at click time and every click is audited."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from bot.core import Core
from bot.dispatch import Dispatcher, new_request_id
from handlers.replay import RunOnce
from handlers.respond import send_reply

# action_id → (the command it stands for, whether the answer replaces the message clicked)
BUTTONS: dict[str, tuple[str, bool]] = {
    "menotime_confirm": ("confirm {value}", True),
    "menotime_cancel": ("cancel {value}", True),
    "menotime_approve": ("approve {value}", False),
    "menotime_deny": ("deny {value}", False),
    "menotime_rollback": ("rollback {env} {revision}", False),
    "menotime_ack": ("ack {value}", False),
    "menotime_snooze": ("snooze {value}", False),
    "menotime_alarm_rollback": ("rollback {value}", False),  # the alarm's env: asks, shows from → to
}
_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_ROLLBACK_VALUE = re.compile(r"^(?P<env>[a-z][a-z0-9-]{1,30}):(?P<revision>[0-9]{1,9})$")


def register(app: App, core: Core) -> None:
    once = RunOnce(core)

    def acknowledge(ack: Ack) -> None:
        ack()

    def click(body: dict[str, Any], action: dict[str, Any], context: dict[str, Any]) -> None:
        if not once.first_time(body, context):
            return  # a replayed click: acked, never run twice
        request_id = context.get("request_id") or new_request_id()
        template, replace = BUTTONS[action["action_id"]]
        value = str(action.get("value", ""))
        # The value came back from Slack inside a signed request, but it is still input: checked.
        if action["action_id"] == "menotime_rollback":
            match = _ROLLBACK_VALUE.match(value)
            line = template.format(**match.groupdict()) if match else "rollback (invalid)"
        else:
            line = template.format(value=value if _VALUE.match(value) else "(invalid)")
        reply = Dispatcher(core=core).handle(
            user_id=str(body.get("user", {}).get("id", "")),
            text=line,
            source="slack-button",
            request_id=request_id,
        )
        if body.get("response_url"):
            send_reply(str(body["response_url"]), reply, request_id=request_id, replace_original=replace)

    app.action(re.compile("^menotime_(confirm|cancel|approve|deny|rollback|ack|snooze|alarm_rollback)$"))(
        ack=acknowledge, lazy=[click]
    )
    # A link button (the runbook) opens in the browser; Slack still tells the app it was clicked.
    app.action("menotime_runbook")(acknowledge)
