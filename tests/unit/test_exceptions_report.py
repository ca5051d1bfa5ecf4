"""EXC-3: count, time to resolve, SLA share, escalation and recurrence per type and month, on a
hand-computed example (months in the business time zone)."""

from __future__ import annotations

from datetime import datetime

import pytest

from orderhub.exceptions.model import (
    RULE_TYPE,
    WATCHDOG,
    ExceptionRecord,
    ExceptionState,
    Rule,
    compact_instant,
)
from orderhub.exceptions.report import ReportRow, exceptions_report, recurrences, render_report

NOW = datetime.fromisoformat("2026-11-20T00:00:00+00:00")
H = 3600


def rec(order_id: str, rule: Rule, raised: str, deadline: str, resolved: str | None = None, by: str = "li.wei",
        escalated: str | None = None) -> ExceptionRecord:
    return ExceptionRecord(
        order_id=order_id, exception_key=f"{rule.value}.{compact_instant(raised)}", channel="mall",
        channel_order_id=order_id.upper(), type=RULE_TYPE[rule], rule=rule, owner="warehouse",
        supervisor="supervisors", state=ExceptionState.RESOLVED if resolved else ExceptionState.OPEN,
        since=raised, due_at=raised, raised_at=raised, sla_deadline=deadline, escalated_at=escalated,
        resolved_at=resolved, resolved_by=by if resolved else None, resolution_note="done" if resolved else None)


NS, PAY = Rule.NOT_SHIPPED, Rule.PAYMENT_UNCONFIRMED
RECORDS = [
    # A: resolved by hand in 2 h, on time
    rec("o1", NS, "2026-11-02T02:00:00.000+00:00", "2026-11-05T02:00:00.000+00:00",
        resolved="2026-11-02T04:00:00.000+00:00"),
    # B: breached, escalated, then cleared by itself after 96 h
    rec("o2", NS, "2026-11-03T00:00:00.000+00:00", "2026-11-06T00:00:00.000+00:00",
        resolved="2026-11-07T00:00:00.000+00:00", by=WATCHDOG, escalated="2026-11-06T00:00:00.000+00:00"),
    # C: o1 again (a recurrence), still open past its deadline, escalated
    rec("o1", NS, "2026-11-10T00:00:00.000+00:00", "2026-11-13T00:00:00.000+00:00",
        escalated="2026-11-13T00:00:00.000+00:00"),
    # F: open, not yet due: neither on time nor late
    rec("o5", NS, "2026-11-19T12:00:00.000+00:00", "2026-11-22T12:00:00.000+00:00"),
    # D: raised 00:30 on 1 November in Shanghai (still 31 October in UTC), resolved in 30 min
    rec("o3", PAY, "2026-10-31T16:30:00.000+00:00", "2026-10-31T18:30:00.000+00:00",
        resolved="2026-10-31T17:00:00.000+00:00"),
    # E: October, open and late, escalated
    rec("o4", PAY, "2026-10-20T00:00:00.000+00:00", "2026-10-20T02:00:00.000+00:00",
        escalated="2026-10-20T02:00:00.000+00:00"),
    # G: o4 again in November (a recurrence across months), resolved in 1 h
    rec("o4", PAY, "2026-11-15T00:00:00.000+00:00", "2026-11-15T02:00:00.000+00:00",
        resolved="2026-11-15T01:00:00.000+00:00"),
]


def test_the_report_matches_the_hand_computed_figures():
    rows = exceptions_report(RECORDS, "Asia/Shanghai", NOW)
    assert rows == [
        ReportRow("2026-10", "payment", raised=1, resolved=0, auto_resolved=0, still_open=1,
                  mean_time_to_resolve_s=None, within_sla=0.0, escalated=1.0, recurrences=0),
        ReportRow("2026-11", "logistics", raised=4, resolved=2, auto_resolved=1, still_open=2,
                  mean_time_to_resolve_s=(2 * H + 96 * H) / 2, within_sla=pytest.approx(1 / 3), escalated=0.5,
                  recurrences=1),
        ReportRow("2026-11", "payment", raised=2, resolved=2, auto_resolved=0, still_open=0,
                  mean_time_to_resolve_s=(0.5 * H + 1 * H) / 2, within_sla=1.0, escalated=0.0, recurrences=1),
        ReportRow("2026-11", "all", raised=6, resolved=4, auto_resolved=1, still_open=2,
                  mean_time_to_resolve_s=(2 * H + 96 * H + 0.5 * H + 1 * H) / 4, within_sla=0.6,
                  escalated=pytest.approx(2 / 6), recurrences=2),
    ]


def test_the_report_narrows_to_a_month_and_a_type_but_counts_recurrences_against_all_history():
    (row,) = exceptions_report(RECORDS, "Asia/Shanghai", NOW, month="2026-11", of_type="payment")
    assert (row.month, row.type, row.raised, row.recurrences) == ("2026-11", "payment", 2, 1)
    assert exceptions_report(RECORDS, "Asia/Shanghai", NOW, month="2025-01") == []


def test_a_recurrence_is_an_exception_whose_order_and_rule_had_an_earlier_one():
    assert recurrences(RECORDS) == {RECORDS[2].exception_id, RECORDS[6].exception_id}


def test_the_rendered_report_is_one_line_per_row_with_readable_durations():
    text = render_report(exceptions_report(RECORDS, "Asia/Shanghai", NOW))
    lines = text.splitlines()
    assert len(lines) == 5 and lines[0].split()[:3] == ["month", "type", "raised"]
    assert lines[2].split()[:2] == ["2026-11", "logistics"] and "2.0 d" in lines[2] and "33%" in lines[2]
    assert "45 min" in lines[3] and "100%" in lines[3]
    assert render_report([]) == "no exceptions recorded"
