"""How one throttled alert reads: in a chat group (markdown) and on the alarm topic (plain text).

Every message says how bad (a severity marker), what (the producer's title), how often (the count
over the window, or what was counted since the last alert), when (first and last occurrence in the
business time zone) and the producer's own text. Producers write no personal data; nothing here adds any.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

# fresh: the first alert of a quiet problem; more: told with what was counted since the last alert;
# digest: the schedule telling what was counted after the last alert, once the problem went quiet.
Telling = Literal["fresh", "more", "digest"]

MARKERS = {"critical": ("🔴", "CRITICAL"), "warning": ("🟠", "WARNING"), "info": ("🔵", "INFO")}
SNS_SUBJECT_MAX_CHARS = 99  # SNS: "less than 100 characters", no line breaks or control characters
SNS_MESSAGE_MAX_BYTES = 250_000  # SNS caps a message at 256 KB


@dataclass(frozen=True)
class Told:
    """What one alert tells (one problem, one destination)."""

    key: str
    title: str
    text: str
    severity: str
    count: int
    first_at: str  # UTC ISO
    last_at: str  # UTC ISO
    telling: Telling
    last_alert_at: str = ""  # UTC ISO of the previous alert, if any ("more", "digest")


@dataclass(frozen=True)
class RenderedAlert:
    title: str  # one line: the chat list / notification preview
    markdown: str  # the robot message
    subject: str  # SNS Subject
    plain: str  # SNS Message


def _parse(iso: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else None


def _local(iso: str, zone: ZoneInfo, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    at = _parse(iso)
    return at.astimezone(zone).strftime(pattern) if at else "?"


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def count_line(told: Told, now: datetime, zone: ZoneInfo) -> str:
    """"3 times in the last 5 min" / "12 more since the last alert (10:05)" / "..., none in the last 7 min"."""
    since = f" (at {_local(told.last_alert_at, zone, '%H:%M')})" if told.last_alert_at else ""
    if told.telling == "fresh":
        first = _parse(told.first_at)
        span = f" in the last {_minutes((now - first).total_seconds())} min" if first and told.count > 1 else ""
        return f"**{_times(told.count).capitalize()}**{span}"
    line = f"**{told.count} more since the last alert**{since}"
    if told.telling == "digest":
        last = _parse(told.last_at)
        if last:
            line += f", none in the last {_minutes((now - last).total_seconds())} min"
    return line


def when_line(told: Told, zone: ZoneInfo) -> str:
    if told.count == 1 or told.first_at == told.last_at:
        return f"At {_local(told.last_at, zone)} ({zone.key})"
    return f"First {_local(told.first_at, zone)} · last {_local(told.last_at, zone)} ({zone.key})"


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def render(told: Told, now: datetime, business_tz: str) -> RenderedAlert:
    zone = ZoneInfo(business_tz)
    icon, label = MARKERS.get(told.severity, MARKERS["warning"])
    title = _one_line(told.title) or told.key
    counted, when = count_line(told, now, zone), when_line(told, zone)
    markdown = "\n".join([f"### {icon} {label} · {title}", counted, when, "", told.text.strip(), "",
                          f"> Alert key: {told.key}"])
    plain = "\n".join([f"{label}: {title}", counted.replace("**", ""), when, "", told.text.strip(), "",
                       f"Alert key: {told.key}"])
    subject = f"[{label}] {title}"
    if len(subject) > SNS_SUBJECT_MAX_CHARS:
        subject = subject[:SNS_SUBJECT_MAX_CHARS - 1] + "…"
    return RenderedAlert(title=f"[{label}] {title}", markdown=markdown, subject=subject, plain=plain)
