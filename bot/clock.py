"""Time as a dependency, so that windows, expiries and retention are testable without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

# The one zone times are shown in to people (on-call reads Pacific time; AWS and auditors read UTC).
DISPLAY_ZONE_NAME = "America/Los_Angeles"
DISPLAY_ZONE = ZoneInfo(DISPLAY_ZONE_NAME)
_ZONE_LABELS = {DISPLAY_ZONE_NAME: "PT"}


def zone_label(zone: str) -> str:
    """How a time zone is written after a time: ``PT`` for Pacific, else its IANA name."""
    return _ZONE_LABELS.get(zone, zone)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to (tests, the demo)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now
