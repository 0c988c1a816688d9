"""From an SNS message's text to an ``Event``: a known shape when it is one, generic otherwise."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bot.events.aws_fields import _region_code, _str, _time, _truncate
from bot.events.cloudwatch import _alarm
from bot.events.event import Event
from bot.events.eventbridge import _eventbridge
from bot.events.rds import _rds_subscription
from bot.render import inert


def parse_message(subject: str | None, message: str) -> Event:
    """The event in an SNS ``message`` (its Message string); generic when it is nothing known.
    Every text in it is AWS's or whoever wrote the alarm: made inert, so it can never mention anyone."""
    subject = inert(subject) if subject is not None else None
    try:
        # Decoded first: JSON may spell "<" as \u003c.
        data = _inert_strings(json.loads(message)) if isinstance(message, str) else None
    except (ValueError, RecursionError):
        data = None
    message = inert(message) if isinstance(message, str) else message
    if isinstance(data, dict):
        try:
            event = _parse_known(data)
        except Exception:  # noqa: BLE001 - a malformed known message is still posted, as text
            event = None
        if event is not None:
            return event
    return _generic(subject, message, data)


def _inert_strings(value: Any) -> Any:
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, dict):
        return {key: _inert_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_inert_strings(item) for item in value]
    return value


def _parse_known(data: dict[str, Any]) -> Event | None:
    if "AlarmName" in data and "NewStateValue" in data:
        return _alarm(data)
    if "detail-type" in data and ("source" in data or isinstance(data.get("detail"), dict)):
        return _eventbridge(data)
    if "Event Source" in data and "Event Message" in data:
        return _rds_subscription(data)
    return None


def _generic(subject: str | None, message: Any, data: Any) -> Event:
    text = message if isinstance(message, str) else repr(message)
    title = (subject or "").strip()
    if not title and isinstance(data, dict):
        title = str(data.get("detail-type") or data.get("Event Source") or "")
    if not title:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        title = first[:120] or "AWS notification"
    at = None
    region = account = None
    if isinstance(data, dict):
        at = _time(data.get("time"))
        region = _region_code(data.get("region"))
        account = _str(data.get("account"))
    digest = hashlib.sha256(f"{subject or ''}\n{text}".encode()).hexdigest()[:16]
    return Event(
        kind="generic",
        key=f"generic:{digest}",
        title=title[:200],
        at=at,
        region=region,
        account=account,
        raw=data if data is not None else text,
        text=_truncate(text),
    )
