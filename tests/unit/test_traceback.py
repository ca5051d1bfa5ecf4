"""The traceback (ST-5): seconds per stage, the stage the order is in and since when (to the injectable
clock), and what it waits for, whatever order its milestones arrived in and whatever clock stamped them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from unit.mall_events import created, mall_event, paid, refunded

from orderhub.channels.mall import CHANNEL
from orderhub.clock import FixedClock, utc_iso
from orderhub.lifecycle.machine import apply_event, derive
from orderhub.lifecycle.traceback import traceback
from orderhub.models.order import Milestones, Order

T0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
FLOW = ("created_at", "deposit_paid_at", "paid_at", "ship_requested_at", "outbound_at", "picked_up_at",
        "delivered_at", "completed_at", "cancelled_at")


def at(minutes: float) -> str:
    return utc_iso(T0 + timedelta(minutes=minutes))


def order_with(**milestones: str) -> Order:
    """An order whose statuses are what these milestones make them."""
    return derive(Order(order_id="oh_1", channel="mall", channel_order_id="M1", total_amount=25800,
                        milestones=Milestones(**milestones)))


def from_events(*raws: dict) -> Order:
    order = None
    for raw in raws:
        (event,) = CHANNEL.parse(json.dumps(raw).encode())
        order, _ = apply_event(order, event)
    assert order is not None
    return order


def test_each_stage_lasts_until_the_next_one_and_the_open_one_is_measured_to_the_clock():
    # Given an order paid 5 minutes after it was placed, marked shipped 55 minutes later, and
    # scanned out of the warehouse 17 hours after that
    order = order_with(created_at=at(0), paid_at=at(5), ship_requested_at=at(60), outbound_at=at(60 + 17 * 60))
    clock = FixedClock(T0 + timedelta(hours=20))
    # When its traceback is read now
    flow = traceback(order, clock.now())
    # Then each closed stage lasted until the next began, and the open one is measured to the clock
    assert [(s.stage, s.seconds_in_stage) for s in flow.stages] == [
        ("ORDERED", 300), ("PAID", 3300), ("SHIP_REQUESTED", 17 * 3600), ("OUTBOUND", None)]
    assert (flow.status, flow.current_stage, flow.current_since) == ("SHIPPED", "OUTBOUND", at(60 + 17 * 60))
    assert flow.seconds_in_current == 2 * 3600
    assert flow.waiting_for == "the carrier's first scan"
    # And as the clock moves, only the open stage grows
    clock.advance(90)
    later = traceback(order, clock.now())
    assert later.seconds_in_current == flow.seconds_in_current + 90
    assert later.stages == flow.stages


def test_a_reporter_whose_clock_is_behind_does_not_put_the_order_back_a_stage():
    # Given the carrier's first scan stamped two minutes before the warehouse's outbound scan (two clocks)
    order = order_with(created_at=at(0), paid_at=at(1), outbound_at=at(120), picked_up_at=at(118))
    flow = traceback(order, T0 + timedelta(hours=3))
    # Then the order is with the carrier, waiting for delivery; the outbound stage lasted 0 s, not -120
    assert [s.stage for s in flow.stages] == ["ORDERED", "PAID", "OUTBOUND", "WITH_CARRIER"]
    assert flow.stages[2].seconds_in_stage == 0
    assert (flow.current_stage, flow.waiting_for) == ("WITH_CARRIER", "delivery")
    assert flow.seconds_in_current == 3 * 3600 - 118 * 60


def test_a_stage_stamped_after_now_is_open_for_zero_seconds_not_less():
    order = order_with(created_at=at(0), paid_at=at(10))
    assert traceback(order, T0 + timedelta(minutes=9)).seconds_in_current == 0


times = st.integers(min_value=0, max_value=60 * 24 * 30)  # minutes after T0, within a month


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional=dict.fromkeys(FLOW, times)).filter(bool), times)
def test_stages_follow_the_flow_never_last_less_than_zero_and_the_last_one_is_current(stamps, now_minutes):
    order = order_with(**{field: at(m) for field, m in stamps.items()})
    now = T0 + timedelta(minutes=now_minutes)
    flow = traceback(order, now)
    names = [s.stage for s in flow.stages]
    expected = ["ORDERED", "DEPOSIT_PAID", "PAID", "SHIP_REQUESTED", "OUTBOUND", "WITH_CARRIER", "DELIVERED",
                "COMPLETED", "CANCELLED"]
    assert names == [name for field, name in zip(FLOW, expected, strict=True) if field in stamps]
    assert all(s.seconds_in_stage is not None and s.seconds_in_stage >= 0 for s in flow.stages[:-1])
    assert flow.stages[-1].seconds_in_stage is None
    assert flow.current_stage == names[-1] and flow.current_since == flow.stages[-1].entered_at
    assert flow.seconds_in_current == max(0, int((now - datetime.fromisoformat(flow.current_since)).total_seconds()))
    # When the reporters' clocks agree with the flow, the stages add up to the time from first to last
    ordered = [stamps[f] for f in FLOW if f in stamps]
    if ordered == sorted(ordered):
        assert sum(s.seconds_in_stage or 0 for s in flow.stages) == (ordered[-1] - ordered[0]) * 60


DELIVERED_STORY = [created(), paid(),
                   mall_event(3, "order.shipped", 90, shipment={"carrier": "SF", "tracking_no": "SF001"}),
                   mall_event(4, "order.delivered", 60 * 30), mall_event(5, "order.delivered", 60 * 31)]


@settings(max_examples=100, deadline=None)
@given(st.permutations(DELIVERED_STORY + DELIVERED_STORY[:2]))  # any order, with duplicates
def test_the_traceback_is_the_same_whatever_order_the_events_arrived_in(events):
    now = T0 + timedelta(days=3)
    reference = traceback(from_events(*DELIVERED_STORY), now)
    assert traceback(from_events(*events), now) == reference
    assert reference.current_stage == "DELIVERED" and reference.waiting_for == "the buyer's confirmation"
    assert reference.stages[-1].entered_at == at(60 * 30)  # the earliest delivery report


WAITS = [
    ({"created_at": 0}, "PENDING_PAYMENT", "ORDERED", "payment"),
    ({"created_at": 0, "deposit_paid_at": 1}, "ON_HOLD", "DEPOSIT_PAID", "release of the hold (presale: balance due)"),
    ({"created_at": 0, "paid_at": 1}, "PAID", "PAID", "a ship request"),
    ({"created_at": 0, "paid_at": 1, "ship_requested_at": 2}, "PAID", "SHIP_REQUESTED",
     "the warehouse's physical outbound scan"),
    ({"created_at": 0, "paid_at": 1, "outbound_at": 3}, "SHIPPED", "OUTBOUND", "the carrier's first scan"),
    ({"created_at": 0, "paid_at": 1, "picked_up_at": 4}, "SHIPPED", "WITH_CARRIER", "delivery"),
    ({"created_at": 0, "paid_at": 1, "delivered_at": 5}, "DELIVERED", "DELIVERED", "the buyer's confirmation"),
    ({"created_at": 0, "paid_at": 1, "delivered_at": 5, "completed_at": 6}, "COMPLETED", "COMPLETED", ""),
    ({"created_at": 0, "cancelled_at": 1}, "CANCELLED", "CANCELLED", ""),
    # Cancelled after payment, no refund reported yet: the buyer waits for the money
    ({"created_at": 0, "paid_at": 1, "cancelled_at": 2}, "CANCELLED", "CANCELLED", "the refund of the payment"),
]


def test_what_the_order_waits_for_follows_its_status():
    for stamps, status, stage, waiting in WAITS:
        flow = traceback(order_with(**{f: at(m) for f, m in stamps.items()}), T0 + timedelta(hours=1))
        assert (flow.status, flow.current_stage, flow.waiting_for) == (status, stage, waiting), stamps


def test_a_hold_names_its_reason():
    order = order_with(created_at=at(0), paid_at=at(1)).model_copy(update={"hold_reason": "risk control"})
    order = derive(order)
    flow = traceback(order, T0 + timedelta(hours=1))
    assert (flow.status, flow.current_stage) == ("ON_HOLD", "PAID")
    assert flow.waiting_for == "release of the hold (risk control)"


def test_a_closed_order_ends_in_closed_after_its_cancellation_whichever_was_stamped_first():
    # Given a paid order cancelled, its refund stamped (by another clock) a minute before the cancellation
    order = from_events(created(), paid(), refunded(3, minutes=9, amount=25800),
                        mall_event(4, "order.cancelled", 10))
    flow = traceback(order, T0 + timedelta(days=1))
    # Then it is closed: the last stage, nothing to wait for; the cancellation lasted 0 s
    assert flow.status == "CLOSED"
    assert [s.stage for s in flow.stages][-2:] == ["CANCELLED", "CLOSED"]
    assert flow.stages[-2].seconds_in_stage == 0
    assert (flow.current_stage, flow.waiting_for) == ("CLOSED", "")
    assert [(c.state, c.open) for c in flow.aftersales] == [("REFUNDED", False)]


def test_a_completed_order_refunded_in_full_is_closed_at_its_refund():
    order = from_events(created(), paid(), mall_event(3, "order.completed", 60 * 24 * 7),
                        refunded(4, minutes=60 * 24 * 8, amount=25800))
    flow = traceback(order, T0 + timedelta(days=9))
    assert [s.stage for s in flow.stages][-2:] == ["COMPLETED", "CLOSED"]
    assert flow.stages[-2].seconds_in_stage == 24 * 3600
    assert (flow.status, flow.current_stage, flow.waiting_for) == ("CLOSED", "CLOSED", "")
    assert flow.seconds_in_current == 24 * 3600
