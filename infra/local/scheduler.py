"""EventBridge Scheduler, locally: rate()/cron()/at() schedules from the topology on an injectable clock.

moto stores schedules but never fires them (research/local_perf.md §1), so the runtime does.
Expressions follow EventBridge Scheduler: cron has six fields (minutes hours day-of-month
month day-of-week year), day-of-week 1-7 is SUN-SAT, one of the two day fields must be `?`,
and the expression is evaluated in the schedule's own time zone. `L`, `W` and `#` are
rejected with a clear error rather than approximated: no schedule of ours needs them.
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from infra.local.clock import Clock
from infra.topology import Schedule

log = logging.getLogger("orderhub.local.scheduler")

_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                        "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}
_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


class ScheduleExpressionError(ValueError):
    pass


@dataclass(frozen=True)
class CronSpec:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: the field is `?`
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1 = Sunday, as in EventBridge
    years: frozenset[int]

    def day_matches(self, day: date) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        assert self.days_of_week is not None
        return (day.weekday() + 1) % 7 + 1 in self.days_of_week


def _parse_field(text: str, lo: int, hi: int, names: dict[str, int] | None, what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if any(c in part for c in "LW#"):
            raise ScheduleExpressionError(f"cron {what} '{part}': L, W and # are not supported by the local scheduler")
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleExpressionError(f"cron {what}: bad step '/{step_text}'")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names, what), _value(b, names, what)
        else:
            start = _value(part, names, what)
            # "5/15" means from 5 to the end of the range, every 15.
            end = hi if step != 1 else start
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise ScheduleExpressionError(f"cron {what} '{text}': values must lie in {lo}-{hi}, low to high")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(token: str, names: dict[str, int] | None, what: str) -> int:
    if names and token.upper() in names:
        return names[token.upper()]
    if not token.isdigit():
        raise ScheduleExpressionError(f"cron {what}: '{token}' is not a number" + (" or a name" if names else ""))
    return int(token)


def parse_cron(body: str) -> CronSpec:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleExpressionError(
            f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}: '{body}'")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleExpressionError("cron: exactly one of day-of-month and day-of-week must be '?'")
    return CronSpec(
        minutes=_parse_field(minute, 0, 59, None, "minutes"),
        hours=_parse_field(hour, 0, 23, None, "hours"),
        days_of_month=None if dom == "?" else _parse_field(dom, 1, 31, None, "day-of-month"),
        months=_parse_field(month, 1, 12, _MONTHS, "month"),
        days_of_week=None if dow == "?" else _parse_field(dow, 1, 7, _DAYS, "day-of-week"),
        years=_parse_field(year, 1970, 2199, None, "year"),
    )


def next_cron_time(spec: CronSpec, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The first instant strictly after `after` (aware) whose wall-clock time in `tz` matches."""
    local = after.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
    day = local.date()
    hours, minutes = sorted(spec.hours), sorted(spec.minutes)
    last_day = date(max(spec.years), 12, 31)
    while day <= last_day:
        if spec.day_matches(day):
            for h in hours:
                for m in minutes:
                    wall = datetime(day.year, day.month, day.day, h, m)
                    if wall < local:
                        continue
                    # fold=0: a repeated wall-clock hour (DST end) fires once, at its first occurrence.
                    instant = wall.replace(tzinfo=tz).astimezone(UTC)
                    if instant > after:
                        return instant
        day += timedelta(days=1)
    return None


class Trigger:
    """One parsed schedule expression: which instants it fires at."""

    def __init__(self, expression: str, timezone: str, anchor: datetime) -> None:
        self.expression = expression
        self.tz = ZoneInfo(timezone)
        match = re.fullmatch(r"(rate|cron|at)\((.*)\)", expression.strip())
        if not match:
            raise ScheduleExpressionError(f"'{expression}' is not rate(...), cron(...) or at(...)")
        self.kind, body = match.group(1), match.group(2).strip()
        self._period: timedelta | None = None
        self._cron: CronSpec | None = None
        self._at: datetime | None = None
        if self.kind == "rate":
            self._period = _parse_rate(body)
        elif self.kind == "cron":
            self._cron = parse_cron(body)
        else:
            try:
                self._at = datetime.fromisoformat(body).replace(tzinfo=self.tz).astimezone(UTC)
            except ValueError as exc:
                raise ScheduleExpressionError(f"at({body}): expected yyyy-mm-ddThh:mm:ss") from exc
        # Rate schedules run every period from when the schedule was created (here: runtime start).
        self._anchor = anchor

    def first_after(self, after: datetime) -> datetime | None:
        if self._period is not None:
            return self._anchor + self._period * (int((after - self._anchor) / self._period) + 1)
        if self._cron is not None:
            return next_cron_time(self._cron, after, self.tz)
        assert self._at is not None
        return self._at if self._at > after else None


def _parse_rate(body: str) -> timedelta:
    match = re.fullmatch(r"(\d+)\s+([a-z]+)", body)
    if not match or match.group(2) not in _RATE_UNITS:
        raise ScheduleExpressionError(f"rate({body}): expected 'N minute(s)|hour(s)|day(s)'")
    value, unit = int(match.group(1)), match.group(2)
    if value <= 0:
        raise ScheduleExpressionError(f"rate({body}): the value must be positive")
    if (value == 1) != (not unit.endswith("s")):
        raise ScheduleExpressionError(f"rate({body}): use the singular unit for 1 and the plural otherwise")
    return timedelta(seconds=value * _RATE_UNITS[unit])


def scheduled_time(instant: datetime) -> str:
    # The format EventBridge Scheduler gives <aws.scheduler.scheduled-time>.
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Invoke = Callable[[str, dict], object]


class Scheduler:
    """Fires each schedule's occurrences on `clock`, once each, in time order across schedules."""

    def __init__(self, schedules: tuple[Schedule, ...], clock: Clock, invoke: Invoke) -> None:
        self._clock = clock
        self._invoke = invoke
        start = clock.now()
        self._schedules = schedules
        self._triggers = [Trigger(s.expression, s.timezone, start) for s in schedules]  # parse errors surface now
        self._heap: list[tuple[datetime, int]] = []
        for i, trigger in enumerate(self._triggers):
            first = trigger.first_after(start)
            if first is not None:
                self._heap.append((first, i))
        heapq.heapify(self._heap)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired: list[tuple[str, str]] = []  # (schedule, scheduled_time), for tests and the demo

    def start(self) -> None:
        self._clock.subscribe(self.run_due)
        self._thread = threading.Thread(target=self._loop, name="orderhub-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._clock.unsubscribe(self.run_due)
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def next_run(self) -> datetime | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def run_due(self, now: datetime) -> int:
        """Fire every occurrence at or before `now` that has not fired yet; returns how many fired."""
        fired = 0
        with self._lock:  # the loop thread and a manual clock's advance() may both call this
            while self._heap and self._heap[0][0] <= now and not self._stop.is_set():
                when, i = heapq.heappop(self._heap)
                schedule = self._schedules[i]
                nxt = self._triggers[i].first_after(when)
                if nxt is not None:
                    heapq.heappush(self._heap, (nxt, i))
                event = {"schedule": schedule.name, "scheduled_time": scheduled_time(when)}
                self.fired.append((schedule.name, event["scheduled_time"]))
                fired += 1
                try:
                    self._invoke(schedule.function, event)
                except Exception:  # the runtime logged and counted it; the next run still fires
                    log.debug("schedule %s: invocation failed", schedule.name)
        return fired

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self._clock.now()
            self.run_due(now)
            nxt = self.next_run()
            self._clock.wait((nxt - now).total_seconds() if nxt else 60.0, self._stop)
