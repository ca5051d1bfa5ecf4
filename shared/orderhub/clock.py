"""The clock as a port: the system clock in AWS, a fixed or moved clock in tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved: for tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._at = self._at + timedelta(seconds=seconds)


def utc_iso(at: datetime) -> str:
    """UTC ISO 8601 with an explicit offset and millisecond precision, the one stored time format."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: every stored time carries its offset")
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


# Channel times the hub accepts. Events are ordered by channel time and the last one wins a
# snapshot, so one far-future time would hold an order against every real event after it; a time
# before the hub's oldest channel history is a wrong value. Pulled orders and imports carry old
# times legitimately, so the past side is a fixed date, not a window.
EARLIEST_CHANNEL_TIME = datetime(2000, 1, 1, tzinfo=UTC)
# Ahead of the hub clock: a platform clock off by minutes, or local time labelled UTC (up to +14 h).
CHANNEL_TIME_AHEAD_S = 86_400


# The time of an event whose channel sent none (Douyin's arbitration messages): it implies no
# milestone and changes nothing, and sorts before every dated event of its order.
UNDATED = datetime(1970, 1, 1, tzinfo=UTC)


def channel_time_refusal(at: datetime, now: datetime) -> str | None:
    """Why `at` cannot be a channel's time for an event received at `now`, or None when it can."""
    if at < EARLIEST_CHANNEL_TIME:
        return f"a time before {EARLIEST_CHANNEL_TIME:%Y-%m-%d} ({at:%Y-%m-%d})"
    if (at - now).total_seconds() > CHANNEL_TIME_AHEAD_S:
        return f"a time more than a day ahead of the hub clock ({at:%Y-%m-%d})"
    return None
