"""The windows of a pull run (ING-5): the policy, the stretch to read and how it is cut.

A run reads from the re-read start (`watermark - overlap`, or where an earlier run was cut
short) up to `now - settle`, in windows whose whole content fits one page: `WindowPlan` hands
out the next window, halves one that came back crowded and doubles after a sparse one, up to
the smallest of the platform's limit, the policy's `max_window` and the size learnt so far.
`orderhub.pull.poller` runs a plan; this module decides nothing about sending or watermarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orderhub.pull.base import PullClient

SECOND = timedelta(seconds=1)
# A window whose page comes back less than this full makes the next window twice as long.
SPARSE_FILL = 0.25


@dataclass(frozen=True)
class PollPolicy:
    overlap: timedelta = timedelta(minutes=10)
    settle: timedelta = timedelta(seconds=60)
    initial_lookback: timedelta = timedelta(minutes=60)
    max_window: timedelta = timedelta(minutes=30)
    rate_limit_retries: int = 5
    max_backoff_s: float = 30.0
    max_pages_per_window: int = 5000

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PollPolicy:
        """The channel's `options` (config `[channels.<name>.options]`); absent keys keep the defaults."""
        default = cls()

        def number(key: str, fallback: float) -> float:
            value = options.get(key)
            return fallback if value is None else float(value)

        return cls(
            overlap=timedelta(minutes=number("overlap_minutes", default.overlap.total_seconds() / 60)),
            settle=timedelta(seconds=number("settle_seconds", default.settle.total_seconds())),
            initial_lookback=timedelta(
                minutes=number("initial_lookback_minutes", default.initial_lookback.total_seconds() / 60)),
            max_window=timedelta(minutes=number("max_window_minutes", default.max_window.total_seconds() / 60)),
            rate_limit_retries=int(number("rate_limit_retries", default.rate_limit_retries)),
            max_backoff_s=number("max_backoff_seconds", default.max_backoff_s),
        )


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    @property
    def label(self) -> str:
        return f"{self.start.astimezone(UTC):%Y%m%dT%H%M%SZ}-{self.end.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def whole_seconds(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(microsecond=0)


def _whole(span: timedelta) -> timedelta:
    return max(timedelta(seconds=int(span.total_seconds())), SECOND)


def window_size(client: PullClient, policy: PollPolicy, learnt_s: int | None = None) -> timedelta:
    """The longest window allowed (platform limit, option), or the size learnt for the shop if smaller."""
    size = min(client.max_window, policy.max_window)
    if learnt_s is not None:
        size = min(size, timedelta(seconds=learnt_s))
    return _whole(size)


def settle_delay(client: PullClient, policy: PollPolicy) -> timedelta:
    declared = getattr(client, "min_settle", None)
    return max(policy.settle, declared) if isinstance(declared, timedelta) else policy.settle


def reread_from(watermark: datetime, overlap: timedelta, settle: timedelta, pulled_at: datetime | None) -> datetime:
    """Where a run starts reading: late writes are caught if they show within `settle + overlap`.

    An order modified at m and visible at v <= m + settle + overlap is missed only if every window
    holding m was read before v. The windows up to the watermark were read after `pulled_at`
    (their run's start), so only m > pulled_at - settle - overlap can need a re-read. Live, that
    is the last `overlap` before the watermark; catching up far behind the clock, nothing.
    """
    if pulled_at is None:
        return watermark - overlap
    return whole_seconds(max(watermark - overlap, min(watermark, pulled_at - settle - overlap)))


@dataclass
class WindowPlan:
    """The windows of one run, sized by what the previous ones held.

    A window that starts before the watermark is part of the re-read; cutting the re-read short
    moves the start to the watermark itself.
    """

    start: datetime
    end: datetime
    watermark: datetime
    size: timedelta
    cap: timedelta

    @classmethod
    def for_run(cls, watermark: datetime, now: datetime, size: timedelta, cap: timedelta, overlap: timedelta,
                settle: timedelta, pulled_at: datetime | None = None, pending: datetime | None = None) -> WindowPlan:
        """`pending`: where an earlier run cut its re-read short (re-read from there)."""
        watermark, end = whole_seconds(watermark), whole_seconds(now - settle)
        start = reread_from(watermark, overlap, settle, pulled_at) if end > watermark else end
        if pending is not None and end > watermark:
            start = min(start, whole_seconds(pending))
        return cls(start, end, watermark, _whole(min(size, cap)), _whole(cap))

    @property
    def rereading(self) -> bool:
        return self.start < self.watermark

    def next(self) -> Window | None:
        if self.start >= self.end:
            return None
        return Window(self.start, min(self.start + self.size, self.end))

    def crowded(self, window: Window) -> bool:
        """Page 1 of `window` said has_next: ask again for half of it. False: one second, nothing to halve."""
        if window.span <= SECOND:
            return False
        self.size = _whole(window.span / 2)
        return True

    def done(self, window: Window, fill: float) -> None:
        self.start = window.end
        if fill < SPARSE_FILL and window.span >= self.size:
            self.size = min(self.cap, self.size * 2)

    def skip_reread(self) -> None:
        self.start = max(self.start, self.watermark)


def plan_windows(watermark: datetime, now: datetime, size: timedelta, overlap: timedelta, settle: timedelta,
                 pulled_at: datetime | None = None) -> list[Window]:
    """The windows of a run in which every window comes back at least a quarter full (no resizing)."""
    plan = WindowPlan.for_run(watermark, now, size, size, overlap, settle, pulled_at)
    windows = []
    while (window := plan.next()) is not None:
        windows.append(window)
        plan.done(window, fill=1.0)
    return windows
