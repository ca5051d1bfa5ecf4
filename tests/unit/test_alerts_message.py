"""How an alert reads: severity, title, count, first/last occurrence in the business time zone, the text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orderhub.alerts.message import Told, render

NOW = datetime(2026, 11, 21, 2, 10, tzinfo=UTC)  # 10:10 in Shanghai


def told(**overrides) -> Told:
    return Told(**{"key": "dead-letters:sub-wms-dlq", "title": "Dead letters in sub-wms-dlq",
                   "text": "sub-wms-dlq holds **3** messages.\nInspect: `orderhub dlq show sub-wms-dlq`",
                   "severity": "critical", "count": 3, "first_at": "2026-11-21T02:05:30.000+00:00",
                   "last_at": "2026-11-21T02:09:58.000+00:00", "telling": "fresh", **overrides})


def test_a_fresh_alert_reads_severity_title_count_times_and_text():
    message = render(told(), NOW, "Asia/Shanghai")
    lines = message.markdown.split("\n")
    assert lines[0] == "### 🔴 CRITICAL · Dead letters in sub-wms-dlq"
    assert lines[1] == "**3 times** in the last 5 min"
    assert lines[2] == "First 2026-11-21 10:05:30 · last 2026-11-21 10:09:58 (Asia/Shanghai)"
    assert "orderhub dlq show sub-wms-dlq" in message.markdown
    assert message.markdown.endswith("> Alert key: dead-letters:sub-wms-dlq")
    assert message.title == "[CRITICAL] Dead letters in sub-wms-dlq"


def test_times_are_shown_in_the_business_time_zone():
    assert "First 2026-11-20 21:05:30 · last 2026-11-20 21:09:58 (America/New_York)" in render(
        told(), NOW, "America/New_York").markdown


def test_a_single_occurrence_reads_once_at_its_time():
    message = render(told(count=1, first_at="2026-11-21T02:09:58.000+00:00"), NOW, "Asia/Shanghai")
    assert "**Once**\nAt 2026-11-21 10:09:58 (Asia/Shanghai)" in message.markdown


def test_what_was_counted_since_the_last_alert():
    message = render(told(count=12, telling="more", last_alert_at="2026-11-21T02:04:00.000+00:00"), NOW,
                     "Asia/Shanghai")
    assert "**12 more since the last alert** (at 10:04)" in message.markdown


def test_a_digest_says_how_long_the_problem_has_been_quiet():
    message = render(told(count=12, telling="digest", last_alert_at="2026-11-21T02:00:00.000+00:00",
                          last_at="2026-11-21T02:03:00.000+00:00"), NOW, "Asia/Shanghai")
    assert "**12 more since the last alert** (at 10:00), none in the last 7 min" in message.markdown


@pytest.mark.parametrize("severity, marker", [("critical", "🔴 CRITICAL"), ("warning", "🟠 WARNING"),
                                              ("info", "🔵 INFO"), ("unknown", "🟠 WARNING")])
def test_severity_markers(severity, marker):
    assert render(told(severity=severity), NOW, "Asia/Shanghai").markdown.startswith(f"### {marker} ·")


def test_the_alarm_topic_gets_plain_text_and_a_one_line_subject():
    message = render(told(title="Dead letters\r\nin\tsub-wms-dlq"), NOW, "Asia/Shanghai")
    assert message.subject == "[CRITICAL] Dead letters in sub-wms-dlq"
    assert message.plain.startswith("CRITICAL: Dead letters in sub-wms-dlq\n3 times in the last 5 min\n")
    assert "###" not in message.plain
