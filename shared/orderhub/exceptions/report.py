"""Exception analytics (EXC-3): per type and month, how many, how fast resolved, how often they come back.

A pure computation over exception records (the CLI reads them with a Scan). An exception counts in
the month (business time zone) it was raised. Per month and type, and for all types together:

- raised; resolved (by now; `auto` of them by the watchdog because the cause cleared); still open;
- mean time to resolve: resolved_at - raised_at over the resolved ones (clock skew counted as 0);
- within SLA: resolved by the deadline, as a share of the decided ones (resolved, or still open
  past the deadline); open ones not yet due are not decided either way;
- escalated: share of raised ones that breached the SLA and went to the supervisor;
- recurrences: exceptions whose order and rule had an earlier exception (of any month).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from orderhub.clock import utc_iso
from orderhub.exceptions.model import WATCHDOG, ExceptionRecord, ExceptionState

ALL_TYPES = "all"


@dataclass(frozen=True)
class ReportRow:
    month: str  # YYYY-MM, business time zone
    type: str  # an exception type, or "all"
    raised: int
    resolved: int
    auto_resolved: int
    still_open: int
    mean_time_to_resolve_s: float | None
    within_sla: float | None  # share of decided ones
    escalated: float  # share of raised ones
    recurrences: int


def _month(iso: str, tz: ZoneInfo) -> str:
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m")


def recurrences(records: Iterable[ExceptionRecord]) -> set[str]:
    """Ids of exceptions whose order and rule had an earlier exception."""
    first: dict[tuple[str, str], tuple[str, str]] = {}
    records = list(records)
    for r in records:
        mark = (r.raised_at, r.exception_key)
        pair = (r.order_id, r.rule.value)
        if pair not in first or mark < first[pair]:
            first[pair] = mark
    return {r.exception_id for r in records if first[(r.order_id, r.rule.value)] != (r.raised_at, r.exception_key)}


def _row(month: str, kind: str, group: Sequence[ExceptionRecord], repeats: set[str], now: str) -> ReportRow:
    resolved = [r for r in group if r.state is ExceptionState.RESOLVED and r.resolved_at]
    decided = [r for r in group if r.state is ExceptionState.RESOLVED or r.sla_deadline < now]
    on_time = [r for r in resolved if r.resolved_at and r.resolved_at <= r.sla_deadline]
    # The watchdog stamps raised_at with its scheduled time and people resolve on their own clocks; a
    # resolution a moment "before" the raise is skew between the two, and counts as instant.
    durations = [max(0.0, (datetime.fromisoformat(r.resolved_at) - datetime.fromisoformat(r.raised_at)).total_seconds())
                 for r in resolved if r.resolved_at]
    return ReportRow(
        month=month, type=kind, raised=len(group), resolved=len(resolved),
        auto_resolved=sum(r.resolved_by == WATCHDOG for r in resolved), still_open=len(group) - len(resolved),
        mean_time_to_resolve_s=sum(durations) / len(durations) if durations else None,
        within_sla=len(on_time) / len(decided) if decided else None,
        escalated=sum(r.escalated_at is not None for r in group) / len(group),
        recurrences=sum(r.exception_id in repeats for r in group))


def exceptions_report(records: Iterable[ExceptionRecord], business_tz: str, now: datetime,
                      month: str | None = None, of_type: str | None = None) -> list[ReportRow]:
    """Rows per (month, type), months in order, each month followed by its "all" row when it has several types."""
    tz = ZoneInfo(business_tz)
    records = list(records)
    repeats = recurrences(records)
    at = utc_iso(now)
    groups: dict[tuple[str, str], list[ExceptionRecord]] = {}
    for r in records:
        m = _month(r.raised_at, tz)
        if (month is None or m == month) and (of_type is None or r.type.value == of_type):
            groups.setdefault((m, r.type.value), []).append(r)
    rows: list[ReportRow] = []
    for m in sorted({m for m, _ in groups}):
        kinds = sorted(k for mm, k in groups if mm == m)
        rows += [_row(m, k, groups[(m, k)], repeats, at) for k in kinds]
        if len(kinds) > 1:
            rows.append(_row(m, ALL_TYPES, [r for k in kinds for r in groups[(m, k)]], repeats, at))
    return rows


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours / 24:.1f} d"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render_report(rows: Sequence[ReportRow]) -> str:
    if not rows:
        return "no exceptions recorded"
    headers = ["month", "type", "raised", "resolved", "auto", "open", "mean time to resolve", "within SLA",
               "escalated", "recurrences"]
    cells = [[r.month, r.type, str(r.raised), str(r.resolved), str(r.auto_resolved), str(r.still_open),
              _duration(r.mean_time_to_resolve_s), _share(r.within_sla), _share(r.escalated), str(r.recurrences)]
             for r in rows]
    widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:  # month and type to the left, figures to the right
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join(line(row) for row in [headers, *cells])
