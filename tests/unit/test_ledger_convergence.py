"""PAY-1/PAY-2: whatever order callbacks and channel events arrive in, and however often, the ledger holds
the same records, each movement counts once, and the order's money is the sum of what was sent.

The expectation is computed from the facts the test sent (the distinct movements, their highest state,
Alipay's refunded totals), never from the hub's output.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.mall_events import T0, created, mall_event

from orderhub.channels.mall import CHANNEL as MALL
from orderhub.clock import FixedClock
from orderhub.lifecycle.machine import hub_order_id
from orderhub.lifecycle.statuses import EventKind
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import LedgerLine, MethodClass, MoneyFact, MoneyKind, MoneyState, OrderEvent
from orderhub.payments.ledger import InMemoryLedger, LedgerRecord, movements
from orderhub.store.orders import InMemoryOrderStore

CST = timezone(timedelta(hours=8))
ORDER = hub_order_id("mall", "M1")
CLOCK = FixedClock(datetime(2026, 11, 22, tzinfo=CST))


def money_event(event_id: str, provider: str, kind: MoneyKind, reference: str, state: MoneyState, amount: int,
                minutes: int, payment_reference: str = "", cumulative: bool = False) -> OrderEvent:
    at = T0 + timedelta(minutes=minutes)
    fact = MoneyFact(provider=provider, kind=kind, reference=reference, state=state, amount=amount, currency="CNY",
                     method=MethodClass.ONLINE, payment_reference=payment_reference, merchant_reference="M1",
                     occurred_at=at, cumulative=cumulative, payload=json.dumps({"id": event_id}))
    paid = kind is MoneyKind.PAYMENT and state is MoneyState.CONFIRMED
    return OrderEvent(channel="mall", channel_order_id="M1", source=provider, event_id=event_id,
                      channel_code=f"{provider} {kind} {state}", kinds=(EventKind.PAID,) if paid else (),
                      event_time=at, money=(fact,))


P, R = MoneyKind.PAYMENT, MoneyKind.REFUND
PENDING, CONFIRMED, REVERSED = MoneyState.PENDING, MoneyState.CONFIRMED, MoneyState.REVERSED

# A money day for one mini-program order: paid by WeChat Pay (the notification retried under a new id),
# paid a second time by Alipay (TRADE_SUCCESS then TRADE_FINISHED: one payment), a WeChat refund that went
# abnormal then succeeded, a WeChat refund closed (never happened), and two Alipay refunds reported as the
# trade's refunded totals.
SENT = [
    money_event("wx-n1", "wechatpay", P, "4200001", CONFIRMED, 25800, 2),
    money_event("wx-n1-retry", "wechatpay", P, "4200001", CONFIRMED, 25800, 2),
    money_event("ali-n1", "alipay", P, "2026112122001", CONFIRMED, 25800, 3),
    money_event("ali-n2", "alipay", P, "2026112122001", CONFIRMED, 25800, 3),
    money_event("wx-r1-abnormal", "wechatpay", R, "5030001", PENDING, 5000, 30, "4200001"),
    money_event("wx-r1-success", "wechatpay", R, "5030001", CONFIRMED, 5000, 45, "4200001"),
    money_event("wx-r2-abnormal", "wechatpay", R, "5030002", PENDING, 700, 50, "4200001"),
    money_event("wx-r2-closed", "wechatpay", R, "5030002", REVERSED, 700, 55, "4200001"),
    money_event("ali-r1", "alipay", R, "B1", CONFIRMED, 1000, 60, "2026112122001", cumulative=True),
    money_event("ali-r2", "alipay", R, "B2", CONFIRMED, 3000, 70, "2026112122001", cumulative=True),
]
SHOP = [MALL.parse(json.dumps(created()).encode())[0],
        MALL.parse(json.dumps(mall_event(2, "order.paid", 1, payment={"transaction_id": "4200001",
                                                                       "amount": 25800})).encode())[0]]


def expected_money(sent: list[OrderEvent]) -> tuple[int, int]:
    """Paid and refunded as the sent facts say: each (provider, kind, reference) once at its highest state;
    Alipay refunds are totals per trade, so the trade's refunds are its highest total."""
    rank = {PENDING: 0, CONFIRMED: 1, REVERSED: 2}
    movement: dict[tuple[str, str, str], MoneyFact] = {}
    for event in sent:
        for fact in event.money:
            key = (fact.provider, fact.kind, fact.reference)
            if key not in movement or rank[fact.state] > rank[movement[key].state]:
                movement[key] = fact
    confirmed = [f for f in movement.values() if f.state is CONFIRMED]
    paid = sum(f.amount for f in confirmed if f.kind is P)
    refunded = sum(f.amount for f in confirmed if f.kind is R and not f.cumulative)
    totals: dict[str, int] = {}
    for f in confirmed:
        if f.kind is R and f.cumulative:
            totals[f.payment_reference] = max(totals.get(f.payment_reference, 0), f.amount)
    return paid, refunded + sum(totals.values())


def deliver(events: list[OrderEvent]) -> InMemoryOrderStore:
    store = InMemoryOrderStore()
    for i, event in enumerate(events):
        message = IntakeMessage.wrap(event.source or "mall", "2026-11-21T02:00:00.000+00:00", f"r{i}",
                                     "198.51.100.7", {}, b"{}", events=(event,))
        map_message(message, store, CLOCK)
    return store


def test_the_sent_money_day_sums_as_sent():
    store = deliver(SHOP + SENT)
    order = store.get_order(ORDER)
    assert (order.paid_amount, order.refunded_amount) == expected_money(SENT) == (51600, 8000)
    assert order.payment_confirmed
    # Six movements, each counted once: two payments, three refunds standing, one reversed
    states = {m.entry_id: m.state for m in movements(order.ledger)}
    assert states == {"wechatpay:payment:4200001": CONFIRMED, "alipay:payment:2026112122001": CONFIRMED,
                      "wechatpay:refund:5030001": CONFIRMED, "wechatpay:refund:5030002": REVERSED,
                      "alipay:refund:B1": CONFIRMED, "alipay:refund:B2": CONFIRMED}
    assert {m.entry_id: m.amount for m in movements(order.ledger) if m.provider == "alipay" and m.kind is R} == \
        {"alipay:refund:B1": 1000, "alipay:refund:B2": 2000}
    # The ledger holds what the order lists, and nothing else
    assert set(store.records) == set(order.ledger)


@settings(max_examples=200, deadline=None)
@given(st.permutations(SHOP + SENT), st.lists(st.integers(0, len(SHOP + SENT) - 1), max_size=8))
def test_any_arrival_order_with_duplicates_books_the_same_ledger_and_the_same_money(arrived, repeats):
    events = list(arrived) + [arrived[i] for i in repeats]
    store = deliver(events)
    order = store.get_order(ORDER)
    assert (order.paid_amount, order.refunded_amount) == expected_money(SENT)
    reference = deliver(SHOP + SENT)
    assert set(store.records) == set(reference.records)
    assert order.ledger == reference.get_order(ORDER).ledger
    assert order.paid_amount == sum(m.amount for m in movements(order.ledger) if m.counts and m.kind is P)
    assert order.refunded_amount == sum(m.amount for m in movements(order.ledger) if m.counts and m.kind is R)


class CrashAfterBooking(InMemoryOrderStore):
    """The mapper dies after the ledger write and before the order write, once."""

    def __init__(self) -> None:
        super().__init__()
        self.crashed = False

    def put_order(self, order, expected_version):
        if order.ledger and not self.crashed:
            self.crashed = True
            raise RuntimeError("the function was stopped here")
        super().put_order(order, expected_version)


def test_a_crash_between_the_ledger_write_and_the_order_write_loses_nothing_and_books_nothing_twice():
    store = CrashAfterBooking()
    payment = SENT[0]
    message = IntakeMessage.wrap("wechatpay", "2026-11-21T02:00:00.000+00:00", "r1", "198.51.100.7", {}, b"{}",
                                 events=(payment,))
    with pytest.raises(RuntimeError, match="stopped here"):
        map_message(message, store, CLOCK)
    assert len(store.records) == 1 and store.get_order(ORDER) is None  # booked, the order not yet written
    map_message(message, store, CLOCK)  # SQS delivers the message again
    order = store.get_order(ORDER)
    assert order.paid_amount == 25800 and len(store.records) == 1 and set(order.ledger) == set(store.records)


class HeldElsewhere(InMemoryLedger):
    """A ledger that already holds the record with other money (booked first by another report)."""

    def book(self, records: list[LedgerRecord]) -> dict[str, LedgerLine]:
        for record in records:
            self.records.setdefault(record.record_id, LedgerRecord(
                **{**record.__dict__, "line": record.line.model_copy(update={"amount": 1})}))
        return super().book(records)


def test_a_record_the_ledger_holds_with_other_money_stands_as_first_booked_on_the_order_too():
    store, ledger = InMemoryOrderStore(), HeldElsewhere()
    message = IntakeMessage.wrap("wechatpay", "2026-11-21T02:00:00.000+00:00", "r1", "198.51.100.7", {}, b"{}",
                                 events=(SENT[0],))
    map_message(message, store, CLOCK, ledger=ledger)
    order = store.get_order(ORDER)
    assert order.paid_amount == 1 and [line.amount for line in order.ledger.values()] == [1]


# The same, with the providers' own notifications (made and signed by the local WeChat Pay and Alipay, read
# by the channels as webhook ingest reads them) beside the shop's events.

def _notified_day() -> tuple[list[OrderEvent], tuple[int, int]]:
    from infra.config import load_config
    from infra.standins.alipay import AlipayStandIn
    from infra.standins.wechatpay import from_config
    from orderhub.channels import get_channel
    from orderhub.channels.base import ChannelSettings

    config = load_config()
    clock = FixedClock(T0 + timedelta(hours=2))  # the providers notify what has happened
    wechat, alipay = from_config(config, "http://unused", clock), AlipayStandIn.from_config(config, "http://x", clock)
    paid = wechat.payment_notification("M1", 25800, T0 + timedelta(minutes=2))
    wx = paid.resource["transaction_id"]
    abnormal = wechat.refund_notification(wx, 5000, "ABNORMAL", T0 + timedelta(minutes=30))
    notes = [paid, abnormal,
             wechat.refund_notification(wx, 5000, "SUCCESS", T0 + timedelta(minutes=45),
                                        refund_id=abnormal.resource["refund_id"]),
             wechat.refund_notification(wx, 700, "CLOSED", T0 + timedelta(minutes=50))]
    trade = alipay.pay("M1", 25800, T0 + timedelta(minutes=3))
    alipay.refund(trade, 1000, "B1", T0 + timedelta(minutes=60))
    alipay.refund(trade, 24800, "B2", T0 + timedelta(minutes=70))
    events: list[OrderEvent] = []
    for name, bodies in (("wechatpay", [(wechat.request(n)[0], n.body) for n in notes]),
                         ("alipay", [(n.headers, n.body) for n in alipay.notifications])):
        channel, document = get_channel(name), config.channels[name]
        settings = ChannelSettings(secrets=tuple(document.secrets),
                                   options={**document.options, **document.secret_options})
        for headers, body in bodies:
            events += channel.parse_with(body, headers, settings)
    # What was sent: WeChat Pay 258.00 and Alipay 258.00 in; refunded WeChat Pay 50.00 (the abnormal refund
    # finished; the closed one never happened) and Alipay all 258.00 (its last refunded total)
    return events, (25800 + 25800, 5000 + 25800)


NOTIFIED, NOTIFIED_MONEY = _notified_day()


@settings(max_examples=100, deadline=None)
@given(st.permutations(SHOP + NOTIFIED), st.lists(st.integers(0, len(SHOP + NOTIFIED) - 1), max_size=6))
def test_the_providers_notifications_in_any_order_and_repeated_book_what_they_sent(arrived, repeats):
    store = deliver(list(arrived) + [arrived[i] for i in repeats])
    order = store.get_order(ORDER)
    assert (order.paid_amount, order.refunded_amount) == NOTIFIED_MONEY
    assert set(store.records) == set(deliver(SHOP + NOTIFIED).records) == set(order.ledger)
