"""The local runtime's notion of "now": the real clock, or a manual one tests move by hand.

The runtime's own timers (schedules, TTL sweeps) read this clock, and so does moto when the
runtime's timers follow it (`LocalRuntime(timers_follow_clock=True)`, `infra.local.aws_clock`).
Handlers keep using the real time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

# Called with the new "now" after a manual clock moves; runs in the caller's thread.
AdvanceListener = Callable[[datetime], object]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Block up to `seconds` of this clock's time, returning early when `stop` is set."""
        ...

    def subscribe(self, listener: AdvanceListener) -> None:
        """Register a callback for discrete jumps of time (manual clocks only)."""
        ...

    def unsubscribe(self, listener: AdvanceListener) -> None: ...


class SystemClock:
    """Wall-clock time. It never jumps, so subscribers are never called."""

    # Re-read the clock at least this often while waiting: the host clock may be adjusted.
    MAX_WAIT_S = 30.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(max(0.0, min(seconds, self.MAX_WAIT_S)))

    def subscribe(self, listener: AdvanceListener) -> None:
        return None

    def unsubscribe(self, listener: AdvanceListener) -> None:
        return None


class ManualClock:
    """A clock that only moves when told to.

    `advance()` / `set()` call every subscriber synchronously with the new time, so when
    they return, the scheduler has fired each due occurrence (once, in order) and the TTL
    sweeper has run: tests assert right after moving time, no waiting.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        # Jumps hold this lock while listeners run; now() must not, because a listener may wait on
        # a thread that reads the clock (a TTL sweep waits on moto, and moto may read this clock).
        self._lock = threading.RLock()
        self._listeners: list[AdvanceListener] = []

    def now(self) -> datetime:
        return self._now  # one reference, read atomically

    # Manual time does not pass by itself: a jump runs the timers through its listeners, so background
    # loops only need to notice stop(); waking them every second would sweep and scan moto for nothing.
    MAX_WAIT_S = 60.0

    def wait(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(min(max(seconds, 0.0), self.MAX_WAIT_S))

    def subscribe(self, listener: AdvanceListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: AdvanceListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("a clock does not run backwards; use set() to jump to an earlier time")
        with self._lock:  # from the time as of this jump, not one another jump is replacing
            return self.set(self._now + timedelta(seconds=seconds))

    def set(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            raise ValueError("ManualClock.set needs a timezone-aware datetime")
        # The lock serialises jumps, so two advances never interleave their firings.
        with self._lock:
            self._now = when.astimezone(UTC)
            listeners = list(self._listeners)
            for listener in listeners:
                listener(self._now)
            return self._now
