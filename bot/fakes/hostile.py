"""What an attacker, or a careless alarm description, sends: Slack markup that must stay inert,
malformed requests to /slack/events, and CloudWatch alarm messages to put them in."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

from bot.fakes.slack_signing import FORM_CONTENT_TYPE

__all__ = [
    "FORGED",
    "HOSTILE",
    "JSON_CONTENT_TYPE",
    "PROD_ARN",
    "Malformed",
    "alarm_message",
    "click",
    "malformed_requests",
]

JSON_CONTENT_TYPE = "application/json"

HOSTILE = (
    "<@U123ABC>",
    "<@W123ABC>",
    "<#C123ABC>",
    "<!here>",
    "<!everyone>",
    "<!channel>",
    "<!subteam^S123ABC>",
    "<https://evil.example|click>",
    "<https://slack.com/archives/C1/p1|thread>",
)
"""Slack markup that would mention, notify or link if the bot posted it as written."""

FORGED = "not-the-signing-secret"
"""A signing secret that is not the app's: what a forger signs with."""


class Malformed(NamedTuple):
    """A malformed request to /slack/events and the status the bot must answer it with."""

    body: bytes
    content_type: str  # "": no Content-Type header at all
    secret: str | None  # what it is signed with; None: unsigned
    changes: dict[str, str]  # headers changed after signing
    status: int


def click(user_id: str) -> dict[str, Any]:
    """A well-formed block_actions payload: ``user_id`` clicked an Acknowledge button."""
    return {
        "type": "block_actions",
        "user": {"id": user_id},
        "team": {"id": "T0TEST"},
        "actions": [{"action_id": "menotime_ack", "value": "x"}],
        "response_url": "https://hooks.slack.com/actions/T0/1/x",
    }


def malformed_requests(secret: str, *, user_id: str) -> dict[str, Malformed]:
    """The malformed requests, by name, for an app whose signing secret is ``secret``; the
    payloads that name a user name ``user_id``. Signed ones are refused by the shape check (400),
    forged or unsigned ones by the signature check (401)."""
    form, json_type = FORM_CONTENT_TYPE, JSON_CONTENT_TYPE
    no_actions_json = json.dumps({**click(user_id), "actions": []})
    no_actions = urlencode({"payload": no_actions_json}).encode()
    # Bolt reads the last payload= of a form, and any body starting with "{" as JSON whatever its
    # Content-Type: the shape check must see what Bolt sees.
    two_payloads = urlencode(
        [("payload", json.dumps({"type": "shortcut", "callback_id": "x"})), ("payload", no_actions_json)]
    ).encode()
    view_not_an_object = urlencode(
        {"payload": json.dumps({"type": "view_submission", "view": "x", "user": {"id": user_id}})}
    ).encode()
    event_not_an_object = b'{"type":"event_callback","event":"x"}'
    return {
        "unsigned {not json": Malformed(b"{not json", json_type, None, {}, 401),
        "forged {not json": Malformed(b"{not json", json_type, FORGED, {}, 401),
        "signed {not json": Malformed(b"{not json", json_type, secret, {}, 400),
        "unsigned non-UTF-8": Malformed(b"\xff\xfe\xfa", form, None, {}, 401),
        "forged non-UTF-8": Malformed(b"\xff\xfe\xfa", form, FORGED, {}, 401),
        "signed non-UTF-8": Malformed(b"\xff\xfe\xfa", form, secret, {}, 400),
        "timestamp abc": Malformed(b"text=x", form, secret, {"X-Slack-Request-Timestamp": "abc"}, 400),
        "signature not ASCII": Malformed(b"text=x", form, secret, {"X-Slack-Signature": "v0=\u00e9"}, 401),
        "signed block_actions with actions: []": Malformed(no_actions, form, secret, {}, 400),
        "payload= not JSON": Malformed(b"payload=%7Bnope", form, secret, {}, 400),
        "payload= a JSON list": Malformed(b"payload=%5B1%5D", form, secret, {}, 400),
        "signed JSON list": Malformed(b"[1]", json_type, secret, {}, 400),
        "event that is not an object": Malformed(event_not_an_object, json_type, secret, {}, 400),
        "event that is not an object, as text/plain": Malformed(
            event_not_an_object, "text/plain", secret, {}, 400
        ),
        "actions: [] as raw JSON under a form Content-Type": Malformed(
            no_actions_json.encode(), form, secret, {}, 400
        ),
        "actions: [] as raw JSON with no Content-Type": Malformed(
            no_actions_json.encode(), "", secret, {}, 400
        ),
        "two payload=, the last with actions: []": Malformed(two_payloads, form, secret, {}, 400),
        "view_submission whose view is a string": Malformed(view_not_an_object, form, secret, {}, 400),
    }


PROD_ARN = "arn:aws:cloudwatch:us-west-1:123456789012:alarm:menotime-prod-api-5xx"


def alarm_message(
    template: Path,
    *,
    name: str = "menotime-prod-api-5xx",
    state: str,
    old: str,
    at: datetime,
    arn: str | None = PROD_ARN,
) -> str:
    """The CloudWatch alarm in the SNS envelope ``template`` (a real one, such as
    ``cloudwatch/real-signed-metric-alarm-sigv1.json`` of the shared fixtures), renamed ``name``
    and moved from ``old`` to ``state`` at ``at``: the Message to put in an envelope of one's own.
    ``arn=None`` leaves AlarmArn out."""
    data = json.loads(json.loads(template.read_text())["Message"])
    data.update(
        AlarmName=name,
        NewStateValue=state,
        OldStateValue=old,
        StateChangeTime=at.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        Region="US West (N. California)",
        AWSAccountId="123456789012",
    )
    if arn is None:
        data.pop("AlarmArn")
    else:
        data["AlarmArn"] = arn
    if state == "OK":
        data["NewStateReason"] = (
            "Threshold Crossed: 1 datapoint [0.0] was not greater than or equal to the threshold (1.0)."
        )
    return json.dumps(data)
