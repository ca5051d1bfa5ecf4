"""ST-2: any arrival order, with any duplicates, gives the order the events give in channel time order,
and the status never moves backwards on the way."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from unit.mall_events import T0, created, mall_event, paid, refunded, shipped

from infra.demo.traffic import load_stories
from orderhub.channels.mall import CHANNEL
from orderhub.clock import FixedClock
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK
from orderhub.mapping import apply_to_store
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import OrderEvent
from orderhub.store.orders import InMemoryOrderStore


def normalise(raw: dict) -> OrderEvent:
    (event,) = CHANNEL.parse(json.dumps(raw).encode())
    return event


def fold(events: list[OrderEvent]):
    order, statuses = None, []
    for event in events:
        order, _ = apply_event(order, event)
        statuses.append(order.status)
    return order, statuses


def comparable(order) -> dict:
    return order.model_dump(exclude=HUB_BOOKKEEPING_FIELDS)


def in_channel_time(events: list[OrderEvent]) -> list[OrderEvent]:
    return sorted(events, key=lambda e: (e.event_time, e.event_id))


def never_backwards(statuses) -> bool:
    return all(STATUS_RANK[a] <= STATUS_RANK[b] for a, b in zip(statuses, statuses[1:], strict=False))


# Realistic mall lives of one order (each a list in the shop's order).
def _fulfilled():
    return [created(), paid(), shipped(), mall_event(4, "order.delivered", 1500),
            mall_event(5, "order.completed", 9000)]


def _returned():
    return [created(), paid(), shipped(), mall_event(4, "order.delivered", 1500), refunded(5, 2000, 6000, "RF1"),
            refunded(6, 2100, 19800, "RF2")]


def _cancelled_after_payment():
    return [created(), paid(), mall_event(3, "order.cancelled", 30), refunded(4, 40, 25800)]


def _cancelled_unpaid():
    return [created(), mall_event(2, "order.cancelled", 30)]


def _partially_refunded():
    return [created(), paid(), shipped(), refunded(4, 100, 5000)]


def _waybill_corrected():
    # The shop re-sends "shipped" with a corrected tracking number: the later one is the truth,
    # the first shipping time stays the shipping time.
    corrected = mall_event(4, "order.shipped", 75, shipment={"carrier": "SF", "tracking_no": "SF002"})
    return [created(), paid(), shipped(minutes=60), corrected, mall_event(5, "order.delivered", 1500)]


def _refund_corrected():
    # The same refund sent again with a corrected amount: the later report of RF1 wins.
    return [created(), paid(), shipped(), refunded(4, 100, 5000, "RF1"), refunded(5, 130, 6000, "RF1")]


def _paid_with_two_transactions():
    # Payment reported twice with different transaction ids (two payments, or a channel that re-issued
    # the id): the order is paid from the first report, and the later report's payment details win.
    # Whether money came in twice is for a payment ledger keyed by transaction id, not for this merge.
    return [created(), paid(2, 1), paid(3, 2), shipped(4)]


def _payment_callback_resent():
    # The same payment (same transaction id) re-sent a minute later as a new event.
    resent = mall_event(3, "order.paid", 2,
                        payment={"transaction_id": "420002", "method": "wechat_pay", "amount": 25800})
    return [created(), paid(2, 1), resent, shipped(4)]


LIVES = [_fulfilled, _returned, _cancelled_after_payment, _cancelled_unpaid, _partially_refunded,
         _waybill_corrected, _refund_corrected, _paid_with_two_transactions, _payment_callback_resent]


@st.composite
def arrivals(draw):
    """A life, then what the network makes of it: any permutation, some events delivered 2-3 times."""
    life = [normalise(raw) for raw in draw(st.sampled_from(LIVES))()]
    repeats = draw(st.lists(st.sampled_from(life), max_size=len(life) * 2))
    return life, draw(st.permutations(life + repeats))


@settings(max_examples=300, deadline=None)
@given(arrivals())
def test_any_arrival_order_with_duplicates_converges_to_the_channel_time_order(case):
    life, arrived = case
    expected, _ = fold(in_channel_time(life))
    actual, statuses = fold(arrived)
    assert comparable(actual) == comparable(expected)


@settings(max_examples=300, deadline=None)
@given(arrivals())
def test_status_never_moves_backwards_whatever_the_arrival_order(case):
    _, arrived = case
    _, statuses = fold(arrived)
    assert never_backwards(statuses)


@settings(max_examples=150, deadline=None)
@given(arrivals())
def test_through_the_store_duplicates_change_nothing_and_order_does_not_matter(case):
    # Given the same events applied through the store (log + conditional writes), in order and shuffled
    life, arrived = case
    clock = FixedClock(T0)
    ordered_store, shuffled_store = InMemoryOrderStore(), InMemoryOrderStore()
    message = IntakeMessage.wrap("mall", "2026-11-22T00:00:00.000+00:00", "r", "198.51.100.1", {}, b"{}")
    for event in in_channel_time(life):
        apply_to_store(event, message, ordered_store, clock)
    versions = []
    for event in arrived:
        apply_to_store(event, message, shuffled_store, clock)
        versions.append(next(iter(shuffled_store.orders.values())).version)
    # Then the orders agree, the log holds each distinct event once, and a write happened only on change
    (ordered,), (shuffled,) = ordered_store.orders.values(), shuffled_store.orders.values()
    assert comparable(shuffled) == comparable(ordered)
    assert len(shuffled_store.events) == len({e.event_id for e in life})
    assert shuffled.version <= len({e.event_id for e in life})


def test_every_sample_story_ends_where_the_story_says():
    for story in load_stories("mall"):
        order, _ = fold([normalise(raw) for raw in reversed(story.events)])
        assert order.status.value == story.expect["status"], story.order_no
        assert order.payment_status.value == story.expect["payment_status"], story.order_no


def test_the_shop_marking_an_order_shipped_is_a_ship_request_not_a_shipment():
    # ST-4: only the warehouse's physical outbound makes an order SHIPPED
    order, _ = fold([normalise(r) for r in [created(), paid(), shipped(minutes=60)]])
    assert (order.status.value, order.fulfillment_status.value) == ("PAID", "SHIP_REQUESTED")


def test_a_cancellation_after_a_ship_request_still_cancels():
    # The parcel had not left: the cancellation stands, whatever order the two arrive in
    events = [normalise(r) for r in [created(), paid(), shipped(minutes=60), mall_event(4, "order.cancelled", 90)]]
    assert fold(events)[0].status.value == "CANCELLED"
    assert fold(list(reversed(events)))[0].status.value == "CANCELLED"


def test_a_corrected_waybill_wins_and_the_first_ship_request_time_stays():
    order, _ = fold([normalise(r) for r in reversed(_waybill_corrected())])
    assert order.tracking_no == "SF002"
    assert order.milestones.ship_requested_at == "2026-11-21T02:00:00.000+00:00"


def test_refunds_add_up_by_refund_id_and_a_repeated_refund_counts_once():
    order, _ = fold([normalise(r) for r in [created(), paid(), refunded(3, 10, 5000, "RF1"),
                                              refunded(3, 10, 5000, "RF1"), refunded(4, 20, 3000, "RF2")]])
    assert sum(c.amount for c in order.aftersales.values() if c.state.value == "REFUNDED") == 8000
    assert order.payment_status.value == "PARTIALLY_REFUNDED"
    # The shop's own word is not money: its payments and refunds are booked from WeChat Pay and Alipay
    assert (order.paid_amount, order.refunded_amount, order.ledger) == (0, 0, {})


@settings(max_examples=300, deadline=None)
@given(arrivals())
def test_an_event_changes_the_order_exactly_when_its_update_is_not_empty(case):
    # The mapper writes an order only when `event_update` says something changed: that must be
    # exactly when the merged order differs from the stored one.
    from orderhub.lifecycle.machine import event_update

    _, arrived = case
    order = None
    for event in arrived:
        base, update, transition = event_update(order, event)
        merged, same_transition = apply_event(order, event)
        assert transition == same_transition
        assert bool(update) == (merged != order)
        assert (base.model_copy(update=update) if update else base) == merged
        order = merged
