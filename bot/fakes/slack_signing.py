"""Build inbound Slack requests that pass real signature verification.

Tests that drive the bot through its HTTP endpoint must send what Slack sends:
a form-encoded body plus ``X-Slack-Request-Timestamp`` / ``X-Slack-Signature``
headers computed with the app's signing secret. Using the real scheme (rather
than switching verification off) keeps the verification path under test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

__all__ = ["FORM_CONTENT_TYPE", "sign", "signature", "slash_command_body"]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def signature(body: str | bytes, secret: str, timestamp: int | str) -> str:
    """Return Slack's v0 signature ``v0=<hex HMAC-SHA256 of "v0:{ts}:{body}">``.

    Exposed separately from :func:`sign` so tests can check a known vector
    without caring about header names.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + raw
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def sign(
    body: str | bytes,
    secret: str,
    timestamp: int | None = None,
    *,
    content_type: str = FORM_CONTENT_TYPE,
) -> dict[str, str]:
    """Headers Slack would attach to ``body``; the timestamp defaults to now.

    Slack (and slack_sdk's verifier) reject timestamps older than five minutes,
    so pass an explicit ``timestamp`` only to test that rejection or a fixed vector.
    The body must be sent byte-for-byte as signed.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(body, secret, ts),
        "Content-Type": content_type,
    }


def slash_command_body(
    *,
    text: str,
    user_id: str,
    response_url: str,
    command: str = "/menotime",
    team_id: str = "T0TEST",
    channel_id: str = "C0TEST",
    user_name: str = "someone",
    trigger_id: str = "123.456",
) -> str:
    """A slash-command payload encoded the way Slack posts it (field order included).

    ``token`` is the legacy verification token; Bolt ignores it when a signing
    secret is configured, but real payloads carry it so ours does too.
    """
    fields = [
        ("token", "legacy-verification-token"),
        ("team_id", team_id),
        ("team_domain", "menotime-test"),
        ("channel_id", channel_id),
        ("channel_name", "ops-test"),
        ("user_id", user_id),
        ("user_name", user_name),
        ("command", command),
        ("text", text),
        ("api_app_id", "A0TEST"),
        ("is_enterprise_install", "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id),
    ]
    return urlencode(fields)


def block_actions_body(
    *,
    user_id: str,
    action_id: str,
    value: str,
    response_url: str,
    team_id: str = "T0TEST",
    channel_id: str = "C0TEST",
) -> str:
    """A button click as Slack sends it: form-encoded, one field `payload` holding the JSON."""
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "someone", "team_id": team_id},
        "api_app_id": "A0TEST",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": channel_id,
            "is_ephemeral": True,
        },
        "trigger_id": "123.456.abc",
        "team": {"id": team_id, "domain": "menotime"},
        "channel": {"id": channel_id, "name": "menotime-ops"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "text": {"type": "plain_text", "text": "Click"},
                "action_ts": "1700000001.000200",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})
