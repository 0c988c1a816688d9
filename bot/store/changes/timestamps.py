"""The store's datetimes: timezone-aware UTC in and out, shown to people in Pacific time."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.clock import DISPLAY_ZONE, DISPLAY_ZONE_NAME, zone_label
from bot.store.db import stored_utc

PACIFIC = DISPLAY_ZONE
_LABEL = zone_label(DISPLAY_ZONE_NAME)


def _aware(value: datetime) -> datetime:
    # Inputs must say which time they mean: a naive datetime here is a bug (utcnow(), a parsed string),
    # and on SQLite it would be compared as text against UTC values.
    if value.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return value.astimezone(UTC)


def short_pt(value: datetime, now: datetime | None = None) -> str:
    """``10:02 PT`` when on the same Pacific day as ``now``, else ``Tue Nov 24 10:02 PT``."""
    local = stored_utc(value).astimezone(PACIFIC)
    if now is not None and stored_utc(now).astimezone(PACIFIC).date() == local.date():
        return f"{local:%H:%M} {_LABEL}"
    return f"{local:%a %b} {local.day} {local:%H:%M} {_LABEL}"
