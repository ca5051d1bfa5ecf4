"""EXC-1..2: the watchdog raises typed exceptions once, for the owner, when their timers fall due; resolves
those whose cause cleared; escalates a breach exactly once to the supervisor; catches up missed runs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.exception_builders import ORDER_ID, T0, at, changes, iso, order, rules

from orderhub.alerts import Alert
from orderhub.exceptions.model import SLOT, WATCHDOG, ExceptionState, ExceptionType, Rule, WrongState
from orderhub.exceptions.watchdog import INITIAL_LOOKBACK, MAX_SLOTS_PER_RUN, Watchdog, arm, arming_floor
from orderhub.models.order import Order
from orderhub.store.exceptions import MemoryExceptionStore
from orderhub.store.orders import InMemoryOrderStore
from orderhub.store.sla_timers import MemoryTimerStore

RULES = rules()
LOGISTICS_SLA = RULES.types[ExceptionType.LOGISTICS].sla_minutes


class Hub:
    """The watchdog over in-memory stores; `alerts` holds every batch it queued."""

    def __init__(self, exception_rules=RULES) -> None:
        self.orders = InMemoryOrderStore()
        self.exceptions = MemoryExceptionStore()
        self.timers = MemoryTimerStore()
        self.alerts: list[list[Alert]] = []
        self.rules = exception_rules
        self.fail_sends = 0

    def send(self, alerts: list[Alert]) -> None:
        if self.fail_sends:
            self.fail_sends -= 1
            raise RuntimeError("alerts queue unavailable")
        self.alerts.append(alerts)

    def change(self, *versions: Order, now: float) -> None:
        """Store the order's last version and deliver the domain events of all of them at minute `now`."""
        self.orders.orders[versions[-1].order_id] = versions[-1]
        floor = arming_floor(self.timers, at(now))
        for change in changes(*versions):
            arm(change, self.rules, self.timers, floor)

    def run(self, minutes: float):
        return Watchdog(self.orders, self.exceptions, self.timers, self.rules, self.send, "Asia/Shanghai").run(
            at(minutes))

    def every_5_minutes(self, start: float, end: float) -> None:
        for minute in range(int(start), int(end) + 1, 5):
            self.run(minute)

    def records(self):
        return sorted(self.exceptions.items.values(), key=lambda r: r.exception_key)

    def sent(self) -> list[Alert]:
        return [a for batch in self.alerts for a in batch]


def paid_never_shipped(hub: Hub, order_id: str = ORDER_ID) -> None:
    hub.change(order(now=0, order_id=order_id), order(now=5, version=2, order_id=order_id, paid=5, txn="42"), now=5)


def test_paid_and_never_shipped_raises_one_logistics_exception_for_the_warehouse_two_hours_after_payment():
    hub = Hub()
    paid_never_shipped(hub)
    hub.every_5_minutes(5, 120)
    assert hub.records() == [] and hub.alerts == []
    result = hub.run(125)
    (record,) = hub.records()
    assert result.raised == [record.exception_id]
    assert (record.type, record.rule, record.state) == (ExceptionType.LOGISTICS, Rule.NOT_SHIPPED, ExceptionState.OPEN)
    assert (record.owner, record.supervisor) == ("warehouse", "supervisors")
    assert (record.since, record.due_at, record.raised_at) == (iso(5), iso(125), iso(125))
    assert record.sla_deadline == iso(125 + LOGISTICS_SLA)
    assert (record.channel, record.channel_order_id) == ("mall", "MALL-1")
    (alert,) = hub.sent()
    assert (alert.route, alert.key, alert.severity, alert.count) == (
        "warehouse", "exception-raised:not_shipped:warehouse", "warning", 1)
    assert "MALL-1" in alert.text and record.exception_id in alert.text
    assert record.exception_id == f"{ORDER_ID}~not_shipped.20261118T020500000Z"
    assert hub.exceptions.items[(ORDER_ID, record.exception_key)].owner_alerted_at == iso(125)


def test_a_missed_stretch_of_runs_is_caught_up_not_skipped():
    hub = Hub()
    paid_never_shipped(hub)
    hub.every_5_minutes(5, 20)
    # No run between minute 20 and minute 200 (an outage); the next one reads every slot in between.
    result = hub.run(200)
    assert result.slots_read == (200 - 15) // 5 + 1
    (record,) = hub.records()
    assert record.raised_at == iso(200) and record.due_at == iso(125)


def test_a_long_outage_is_caught_up_over_several_runs_each_bounded():
    hub = Hub()
    hub.run(0)
    # A timer due in the middle of a three-day gap
    hub.change(order(now=0), order(now=5, version=2, paid=5, txn="42"), now=5)
    late = 3 * 24 * 60
    runs = [hub.run(late) for _ in range(4)]
    assert [r.slots_read for r in runs[:2]] == [MAX_SLOTS_PER_RUN, MAX_SLOTS_PER_RUN]
    assert runs[0].behind and runs[1].behind and not runs[-1].behind
    assert [len(r.raised) for r in runs] == [1, 0, 0, 0]  # the slot of minute 125 is in the first day
    assert hub.timers.marks == sorted(hub.timers.marks)  # the watermark only moved forward


def test_running_twice_and_overlapping_slots_raise_each_exception_once():
    hub = Hub()
    paid_never_shipped(hub)
    for minute in (125, 125, 126, 130, 125, 140):
        hub.run(minute)
    assert len(hub.records()) == 1
    assert len(hub.sent()) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=25))
def test_in_any_order_of_runs_each_exception_is_raised_and_told_once(run_minutes):
    hub = Hub()
    for n, oid in enumerate(("oh_a", "oh_b", "oh_c")):
        hub.change(order(now=0, order_id=oid), order(now=5, version=2, order_id=oid, paid=5, txn="", hold="",
                                                      ship_requested=10 * n or None), now=5)
    for minute in run_minutes:
        hub.run(minute)
    latest = max(run_minutes)
    expected = {(oid, rule) for oid in ("oh_a", "oh_b", "oh_c")
                for rule, due in ((Rule.PAYMENT_UNCONFIRMED, 35), (Rule.NOT_SHIPPED, 125)) if latest >= due}
    expected |= {("oh_c", Rule.NO_OUTBOUND)} if latest >= 20 + RULES.no_outbound_after_min else set()
    expected |= {("oh_b", Rule.NO_OUTBOUND)} if latest >= 10 + RULES.no_outbound_after_min else set()
    raised = [(r.order_id, r.rule) for r in hub.records()]
    assert sorted(raised) == sorted(expected)  # each once, none missing
    assert sum(a.count for a in hub.sent() if a.key.startswith("exception-raised")) == len(raised)


def test_a_breach_escalates_exactly_once_and_tells_the_supervisor_even_when_acknowledged():
    hub = Hub()
    paid_never_shipped(hub)
    hub.run(125)
    (record,) = hub.records()
    hub.exceptions.acknowledge(ORDER_ID, record.exception_key, "li.wei", iso(130))
    deadline = 125 + LOGISTICS_SLA
    assert hub.run(deadline - 1).escalated == []
    results = [hub.run(deadline), hub.run(deadline + 5), hub.run(deadline)]
    assert [r.escalated for r in results] == [[record.exception_id], [], []]
    (escalated,) = hub.records()
    assert escalated.escalated_at == iso(deadline) and escalated.state is ExceptionState.ACKNOWLEDGED
    supervisor = [a for a in hub.sent() if a.key.startswith("exception-escalated")]
    assert [(a.route, a.severity, a.count) for a in supervisor] == [("supervisors", "critical", 1)]
    assert escalated.supervisor_alerted_at == iso(deadline)


def test_an_exception_whose_cause_cleared_is_resolved_by_the_watchdog_with_what_cleared_it():
    hub = Hub()
    paid_never_shipped(hub)
    hub.run(125)
    hub.change(order(now=150, version=3, paid=5, txn="42", outbound=150), now=150)
    result = hub.run(155)
    (record,) = hub.records()
    assert result.resolved == [record.exception_id]
    assert (record.state, record.resolved_by, record.resolved_at) == (ExceptionState.RESOLVED, WATCHDOG, iso(155))
    assert record.resolution_note == f"cleared: left the warehouse at {iso(150)}"
    assert hub.run(160).resolved == []
    with pytest.raises(WrongState):
        hub.exceptions.resolve(ORDER_ID, record.exception_key, "li.wei", "again", iso(170))


def test_a_hold_released_then_held_again_is_a_second_exception_a_recurrence():
    hub = Hub()
    hub.change(order(now=5, paid=5, txn="42", hold="risk control", hold_at=5), now=5)
    hub.run(5)
    hub.change(order(now=20, version=2, paid=5, txn="42", hold="", hold_at=20), now=20)
    hub.run(20)
    hub.change(order(now=40, version=3, paid=5, txn="42", hold="risk control", hold_at=40), now=40)
    hub.run(40)
    first, second = hub.records()
    assert (first.rule, second.rule) == (Rule.RISK_HOLD, Rule.RISK_HOLD)
    assert first.state is ExceptionState.RESOLVED and first.resolution_note == "cleared: hold released"
    assert second.state is ExceptionState.OPEN and (first.since, second.since) == (iso(5), iso(40))
    assert (second.owner, second.type) == ("service", ExceptionType.RISK)


def test_an_occurrence_resolved_by_hand_is_not_raised_again_while_the_hold_is_re_reported():
    hub = Hub()
    hub.change(order(now=5, paid=5, txn="42", hold="risk control", hold_at=5), now=5)
    hub.run(5)
    (record,) = hub.records()
    hub.exceptions.resolve(ORDER_ID, record.exception_key, "li.wei", "checked with the platform", iso(8))
    # Another order change while still held, same hold: its timer fires and finds the same occurrence.
    hub.change(order(now=12, version=2, paid=5, txn="42", hold="risk control", hold_at=5), now=12)
    hub.run(15)
    assert [r.state for r in hub.records()] == [ExceptionState.RESOLVED]


def test_one_unresolved_exception_per_order_and_rule_while_the_channel_re_reports_the_hold():
    hub = Hub()
    hub.change(order(now=5, paid=5, txn="42", hold="risk control", hold_at=5), now=5)
    hub.run(5)
    hub.change(order(now=12, version=2, paid=5, txn="42", hold="risk control", hold_at=12), now=12)
    hub.run(15)
    (record,) = hub.records()
    assert record.state is ExceptionState.OPEN and record.since == iso(5)


def test_a_threshold_raised_after_arming_defers_the_exception_instead_of_losing_it():
    hub = Hub()
    paid = order(now=5, version=2, paid=5)
    hub.change(order(now=0), paid, now=5)  # armed with the 30-minute payment threshold
    hub.rules = rules(payment_unconfirmed_after_min=60)
    result = hub.run(35)
    assert result.raised == [] and result.rearmed == 1
    hub.every_5_minutes(40, 60)
    assert [r.rule for r in hub.records()] == []
    hub.run(65)
    assert [(r.rule, r.due_at) for r in hub.records()] == [(Rule.PAYMENT_UNCONFIRMED, iso(65))]


def test_alerts_that_could_not_be_queued_are_sent_by_the_next_run():
    hub = Hub()
    paid_never_shipped(hub)
    hub.fail_sends = 1
    with pytest.raises(RuntimeError):
        hub.run(125)
    (record,) = hub.records()
    assert record.owner_alerted_at is None
    hub.run(130)
    assert [a.key for a in hub.sent()] == ["exception-raised:not_shipped:warehouse"]
    assert hub.records()[0].owner_alerted_at == iso(130)


def test_alerts_are_one_message_per_rule_and_route_with_the_count():
    hub = Hub()
    for n in range(7):
        paid_never_shipped(hub, f"oh_order{n}")
    hub.run(125)
    (alert,) = hub.sent()
    assert alert.count == 7 and alert.title.startswith("7 new logistics exceptions: paid, not shipped after 2 h")
    assert alert.text.count("- mall order") == 5 and "and 2 more" in alert.text


def test_the_first_timers_ever_armed_set_where_the_first_run_starts_however_late_it_comes():
    hub = Hub()
    paid_never_shipped(hub)  # armed at minute 5
    assert hub.timers.watermark() == at(5)
    result = hub.run(400)
    assert result.slots_read == (400 - 5) // 5 + 1 and len(result.raised) == 1
    assert hub.timers.watermark() == at(400) - SLOT


def test_a_first_run_with_nothing_armed_yet_looks_back_a_bounded_stretch():
    hub = Hub()
    result = hub.run(130)
    assert result.slots_read == INITIAL_LOOKBACK // SLOT + 1 and result.raised == []
    assert hub.timers.watermark() == at(130) - SLOT == T0 + 25 * SLOT
