"""The local scheduler: EventBridge Scheduler expressions, time zones, and a clock tests can move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from infra.config import HubConfig
from infra.local.clock import ManualClock
from infra.local.runtime import LocalRuntime
from infra.local.scheduler import ScheduleExpressionError, Scheduler, Trigger, parse_cron
from infra.topology import Schedule

SHANGHAI = "Asia/Shanghai"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def next_runs(expression: str, after: datetime, count: int, tz: str = SHANGHAI) -> list[datetime]:
    trigger, runs = Trigger(expression, tz, anchor=after), []
    for _ in range(count):
        after = trigger.first_after(after)
        runs.append(after)
    return runs


def test_a_daily_cron_runs_at_nine_in_the_business_time_zone():
    # Given 09:00 every day, evaluated in Asia/Shanghai (UTC+8)
    # When asked for the next runs after midnight UTC
    runs = next_runs("cron(0 9 * * ? *)", utc(2026, 11, 21, 0, 0), 2)
    # Then they are 01:00 UTC, daily: not 09:00 UTC (the GMT/CST mix-up REC-6 warns about)
    assert runs == [utc(2026, 11, 21, 1, 0), utc(2026, 11, 22, 1, 0)]


def test_a_run_is_strictly_after_the_given_instant():
    assert next_runs("cron(0 9 * * ? *)", utc(2026, 11, 21, 1, 0), 1) == [utc(2026, 11, 22, 1, 0)]


def test_weekday_names_ranges_and_sunday_as_one():
    # Given weekdays at 08:00 Shanghai; 2026-11-20 is a Friday
    runs = next_runs("cron(0 8 ? * MON-FRI *)", utc(2026, 11, 20, 1, 0), 2)
    # Then Friday's run is past, so Monday and Tuesday follow
    assert runs == [utc(2026, 11, 23, 0, 0), utc(2026, 11, 24, 0, 0)]
    # And day-of-week 1 is Sunday, as in EventBridge
    (sunday,) = next_runs("cron(0 12 ? * 1 *)", utc(2026, 11, 20, 0, 0), 1, tz="UTC")
    assert sunday == utc(2026, 11, 22, 12, 0) and sunday.strftime("%a") == "Sun"


def test_lists_steps_and_months():
    spec = parse_cron("0/15 6-8,20 1,15 JAN-MAR/2 ? 2026-2027")
    assert sorted(spec.minutes) == [0, 15, 30, 45]
    assert sorted(spec.hours) == [6, 7, 8, 20]
    assert sorted(spec.days_of_month or ()) == [1, 15]
    assert sorted(spec.months) == [1, 3]
    assert spec.days_of_week is None and sorted(spec.years) == [2026, 2027]


def test_a_year_field_ends_the_schedule():
    trigger = Trigger("cron(0 0 1 1 ? 2026)", "UTC", anchor=utc(2025, 1, 1))
    assert trigger.first_after(utc(2025, 6, 1)) == utc(2026, 1, 1)
    assert trigger.first_after(utc(2026, 1, 1)) is None


def test_a_repeated_wall_clock_hour_fires_once():
    # Given 01:30 daily in New York; on 2026-11-01 clocks fall back and 01:30 happens twice
    runs = next_runs("cron(30 1 * * ? *)", utc(2026, 11, 1, 0, 0), 2, tz="America/New_York")
    # Then it runs once that day (the first 01:30, EDT) and next at 01:30 EST
    assert runs == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_rate_runs_every_period_from_the_anchor():
    runs = next_runs("rate(5 minutes)", utc(2026, 11, 21, 0, 58), 3)
    assert runs == [utc(2026, 11, 21, 1, 3), utc(2026, 11, 21, 1, 8), utc(2026, 11, 21, 1, 13)]
    assert next_runs("rate(1 day)", utc(2026, 11, 21), 1) == [utc(2026, 11, 22)]


def test_at_runs_once_in_its_time_zone():
    trigger = Trigger("at(2026-11-21T09:00:00)", SHANGHAI, anchor=utc(2026, 11, 20))
    assert trigger.first_after(utc(2026, 11, 20)) == utc(2026, 11, 21, 1, 0)
    assert trigger.first_after(utc(2026, 11, 21, 1, 0)) is None


@pytest.mark.parametrize("expression, complaint", [
    ("rate(1 minutes)", "singular"),
    ("rate(5 minute)", "plural"),
    ("rate(0 minutes)", "positive"),
    ("rate(5 weeks)", "minute"),
    ("cron(0 9 * * *)", "6 fields"),
    ("cron(0 9 * * MON *)", "exactly one"),
    ("cron(0 9 ? * ? *)", "exactly one"),
    ("cron(0 9 L * ? *)", "not supported"),
    ("cron(0 9 15W * ? *)", "not supported"),
    ("cron(0 9 ? * 2#1 *)", "not supported"),
    ("cron(61 9 * * ? *)", "0-59"),
    ("cron(0 9 * XYZ ? *)", "not a number"),
    ("every 5 minutes", "rate(...)"),
])
def test_unsupported_or_invalid_expressions_are_rejected_clearly(expression, complaint):
    with pytest.raises(ScheduleExpressionError, match=complaint):
        Trigger(expression, SHANGHAI, anchor=utc(2026, 1, 1))


def test_advancing_a_manual_clock_fires_each_due_occurrence_once_in_order():
    # Given a 5-minute rate and a 09:00-Shanghai cron, on a manual clock at 00:58 UTC
    clock = ManualClock(utc(2026, 11, 21, 0, 58))
    fired: list[tuple[str, dict]] = []
    scheduler = Scheduler((Schedule("health", "rate(5 minutes)", "hub_health"),
                           Schedule("recon", "cron(0 9 * * ? *)", "reconciliation", timezone=SHANGHAI)),
                          clock, lambda fn, event: fired.append((fn, event)))
    scheduler.start()
    try:
        # When time moves 10 minutes in one jump
        clock.advance(600)
        # Then every occurrence in between fired once, in time order, with its own scheduled time
        assert fired == [
            ("reconciliation", {"schedule": "recon", "scheduled_time": "2026-11-21T01:00:00Z"}),
            ("hub_health", {"schedule": "health", "scheduled_time": "2026-11-21T01:03:00Z"}),
            ("hub_health", {"schedule": "health", "scheduled_time": "2026-11-21T01:08:00Z"}),
        ]
        # And standing still fires nothing again; the next step fires only the next run
        clock.advance(0)
        clock.advance(300)
        assert [e["scheduled_time"] for _, e in fired[3:]] == ["2026-11-21T01:13:00Z"]
    finally:
        scheduler.stop()


def test_a_failing_run_does_not_stop_the_schedule():
    clock = ManualClock(utc(2026, 1, 1))
    calls = []

    def invoke(fn, event):
        calls.append(event["scheduled_time"])
        raise RuntimeError("boom")

    scheduler = Scheduler((Schedule("s", "rate(1 minute)", "f", timezone="UTC"),), clock, invoke)
    scheduler.start()
    try:
        clock.advance(180)
        assert calls == ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z"]
    finally:
        scheduler.stop()


def test_the_runtime_invokes_the_scheduled_function_on_its_clock():
    # Given the hub's topology (hub-health every 5 minutes) on a manual clock, hub_health stubbed
    start = datetime.now(UTC).replace(microsecond=0)
    clock = ManualClock(start)
    events: list[dict] = []

    def hub_health(event, context):
        events.append(event)
        assert context.function_name == "orderhub-itsched-hub_health"
        return {"ok": True}

    config = HubConfig(stage="itsched", ops_token="test-ops-token-0123456789")
    # The other scheduled functions fire too; stand-ins spare a cold start of each real one
    others = {name: (lambda event, context: None) for name in ("channel_poller", "sla_watchdog", "notifier")}
    with LocalRuntime(config, port=0, clock=clock, prewarm=False, timers_follow_clock=True,
                      handler_overrides={"hub_health": hub_health, **others}) as runtime:
        assert runtime.clock is clock
        # When a quarter of an hour passes
        clock.advance(15 * 60)
        # Then hub_health ran three times, each with its occurrence's time
        expected = [(start + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ") for m in (5, 10, 15)]
        assert events == [{"schedule": "hub-health", "scheduled_time": t} for t in expected]
        assert runtime.invocations["hub_health"] == 3


def test_manual_clock_refuses_naive_times_and_going_backwards_by_advance():
    clock = ManualClock(utc(2026, 1, 1))
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 1, 2))  # naive: the point of the test
    assert clock.set(datetime(2026, 1, 2, 8, tzinfo=ZoneInfo(SHANGHAI))) == utc(2026, 1, 2)
