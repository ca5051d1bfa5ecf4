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
