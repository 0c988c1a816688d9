"""The button registry: every button the bot shows, by action id, with the `/menotime` line it
stands for. Messages make their buttons here and the Slack listener reads a click back here, so a
button's id, its command and the check of the value Slack sends back cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.answers import Button

# A request id (REQ-…), an alarm thread's short id, an environment name.
_WORD = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# `env:revision`, what the rollout's and the alarm's revision rollback carry.
_REVISION = re.compile(r"^(?P<env>[a-z][a-z0-9-]{1,30}):(?P<revision>[0-9]{1,9})$")


@dataclass(frozen=True)
class ButtonKind:
    action_id: str
    command: str  # the line, with the fields of ``value``: "confirm {value}", "rollback {env} {revision}"
    replaces: bool = False  # the answer replaces the message clicked (a question answered)
    value: re.Pattern[str] = _WORD

    def button(self, label: str, value: str, *, style: str | None = None) -> Button:
        """The button, carrying ``value`` and the line it runs (the console shows that line)."""
        line = self.line(value)
        if line is None:
            raise ValueError(f"{value!r} is not a value of {self.action_id}")
        return Button(label, self.action_id, value, line, style)

    def line(self, value: str) -> str | None:
        """The line a click with ``value`` runs; None for a value this button never carries (the
        value came back inside a signed request, but it is still input)."""
        match = self.value.match(value)
        if match is None:
            return None
        return self.command.format(value=value, **match.groupdict())

    def clicked(self, value: str) -> str:
        """The line a click runs: a value it never carries becomes an invalid argument, which the
        dispatcher refuses in one sentence and audits like any bad input."""
        return self.line(value) or f"{self.command.split()[0]} (invalid)"


CONFIRM = ButtonKind("menotime_confirm", "confirm {value}", replaces=True)
CANCEL = ButtonKind("menotime_cancel", "cancel {value}", replaces=True)
APPROVE = ButtonKind("menotime_approve", "approve {value}")
DENY = ButtonKind("menotime_deny", "deny {value}")
ROLLBACK_TO = ButtonKind("menotime_rollback", "rollback {env} {revision}", value=_REVISION)
ACKNOWLEDGE = ButtonKind("menotime_ack", "ack {value}")
SNOOZE = ButtonKind("menotime_snooze", "snooze {value}")
ROLLBACK_ENV = ButtonKind("menotime_alarm_rollback", "rollback {value}")  # asks, showing from → to

BUTTONS: Mapping[str, ButtonKind] = {
    kind.action_id: kind
    for kind in (CONFIRM, CANCEL, APPROVE, DENY, ROLLBACK_TO, ACKNOWLEDGE, SNOOZE, ROLLBACK_ENV)
}
# A link button: Slack opens the runbook; the click reaches the app, and runs nothing.
RUNBOOK = "menotime_runbook"


def runbook_button(short_id: str, url: str) -> Button:
    return Button("Runbook", RUNBOOK, short_id, f"(open {url})", url=url)
