"""Finance commands: checked against the order's ledger, queued as `finance` events, booked by the mapper."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhub.channels import get_channel
from orderhub.clock import FixedClock
from orderhub.lifecycle.machine import hub_order_id
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import (
    MethodClass,
    MoneyFact,
    MoneyKind,
    MoneyState,
    Order,
    OrderDetails,
    OrderEvent,
    OrderLine,
)
from orderhub.payments import commands
from orderhub.payments.commands import CommandRefused, minor_units, order_ref, prepare, submit
from orderhub.payments.journal import major
from orderhub.payments.ledger import money
from orderhub.store.orders import InMemoryOrderStore

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
ORDER_NO = "M20261201001"
ORDER_ID = hub_order_id("mall", ORDER_NO)


class Queue:
    def __init__(self) -> None:
        self.sent: list[IntakeMessage] = []

    def send(self, message: IntakeMessage) -> None:
        self.sent.append(message)


def created(store: InMemoryOrderStore, channel: str = "mall", number: str = ORDER_NO, total: int = 129900) -> Order:
    event = OrderEvent(channel=channel, channel_order_id=number, event_id=f"{number}-created",
                       channel_code="order.created", kinds=("CREATED",), event_time=NOW - timedelta(hours=5),
                       details=OrderDetails(currency="CNY", total_amount=total,
                                            lines=(OrderLine(sku="TEA-1", quantity=1, unit_price=total),)))
    deliver(store, IntakeMessage.wrap(channel, "2026-12-01T01:00:00.000+00:00", "r", "", {}, b"{}", events=(event,)))
    order = store.get_order(hub_order_id(channel, number))
    assert order is not None
    return order


def deliver(store: InMemoryOrderStore, message: IntakeMessage, now: datetime = NOW) -> list[str]:
    # Through SQS and back, as the status mapper receives it.
    again = IntakeMessage.model_validate_json(message.model_dump_json())
    return [o.outcome for o in map_message(again, store, FixedClock(now), ledger=store)]


def run(store: InMemoryOrderStore, request: dict[str, Any], now: datetime = NOW, command_id: str = "cmd-1",
        actor: str = "ops-token") -> commands.Prepared:
    """Check, queue and map one command, as the API and the status mapper do."""
    prepared = prepare(request, store, now, command_id=command_id, actor=actor)
    queue = Queue()
    submit(prepared, queue, now, "203.0.113.9")
    (message,) = queue.sent
    # A reversal of a paid order's payment is booked, its status held (statuses never move back).
    assert deliver(store, message, now) in (["applied"], ["status_held"])
    return prepared


def transfer(**fields: Any) -> dict[str, Any]:
    request = {"command": "record_transfer", "order_id": ORDER_ID, "reference": "CMB20261201000042",
               "amount": 129900, "reason": "statement line 42"}
    request.update(fields)
    return {k: v for k, v in request.items() if v is not None}


def refused(store: InMemoryOrderStore, request: dict[str, Any], now: datetime = NOW) -> CommandRefused:
    with pytest.raises(CommandRefused) as caught:
        prepare(request, store, now, command_id="cmd-x", actor="ops-token")
    return caught.value


def test_a_recorded_transfer_is_queued_as_a_finance_event_and_books_a_pending_entry():
    store = InMemoryOrderStore()
    created(store)
    prepared = prepare(transfer(), store, NOW, command_id="cmd-1", actor="ops-token")
    queue = Queue()
    message = submit(prepared, queue, NOW, "203.0.113.9")
    assert queue.sent == [message]
    assert (message.channel, message.request_id, message.source_ip) == ("finance", "cmd-1", "203.0.113.9")
    # The event travels parsed, and it is what the channel module reads of the body (a replay reads the same).
    assert message.events == tuple(get_channel("finance").parse(message.body))
    assert prepared.receipt() == {
        "command_id": "cmd-1", "command": "record_transfer", "order_id": ORDER_ID,
        "entry_id": "bank:payment:CMB20261201000042", "state": "pending", "status": "queued",
        "record_id": "bank:payment:CMB20261201000042#pending@2026-12-01T06:00:00.000+00:00"}
    # Defaults: a payment, by bank transfer, in the order's currency, now; the order's number rides along.
    body = json.loads(message.body)
    assert (body["kind"], body["method"], body["provider"], body["currency"], body["merchant_reference"]) == (
        "payment", "bank_transfer", "bank", "CNY", ORDER_NO)
    assert (body["actor"], body["command_id"]) == ("ops-token", "cmd-1")
    assert deliver(store, message) == ["applied"]
    order = store.get_order(ORDER_ID)
    assert order is not None and list(order.ledger) == [prepared.record_id]
    books = money(order.ledger, order.currency)
    assert (books.paid, books.pending_in, order.payment_confirmed) == (0, 129900, False)
    (record,) = store.records_of_order(ORDER_ID)
    assert (record.source, record.actor, record.line.note) == ("finance", "ops-token", "statement line 42")


def test_the_order_can_be_named_by_channel_and_number():
    store = InMemoryOrderStore()
    created(store)
    prepared = prepare(transfer(order_id=None, channel="mall", channel_order_id=ORDER_NO), store, NOW,
                       command_id="cmd-1", actor="a")
    assert prepared.order.order_id == ORDER_ID


def test_confirming_the_transfer_makes_the_money_paid_and_a_second_confirmation_is_refused():
    store = InMemoryOrderStore()
    created(store)
    run(store, transfer())
    later = NOW + timedelta(hours=20)
    confirm = {"command": "confirm", "order_id": ORDER_ID, "entry": "bank:payment:CMB20261201000042",
               "reason": "on the 12-02 statement"}
    prepared = run(store, confirm, later, command_id="cmd-2")
    # The confirmation repeats the entry's money as first reported: the movement's records agree.
    assert (prepared.command.amount, prepared.command.currency, prepared.command.method) == (
        129900, "CNY", MethodClass.BANK_TRANSFER)
    order = store.get_order(ORDER_ID)
    assert order is not None and (order.paid_amount, order.payment_confirmed, order.status) == (129900, True, "PAID")
    assert refused(store, confirm, later).status == 409
    assert refused(store, transfer(), later).status == 409  # the serial is in the ledger already


def test_a_reversal_is_a_record_of_its_own_and_a_reversed_entry_stays_reversed():
    store = InMemoryOrderStore()
    created(store)
    run(store, transfer())
    run(store, {"command": "confirm", "order_id": ORDER_ID, "entry": "bank:payment:CMB20261201000042",
                "reason": "statement"}, NOW + timedelta(hours=1), command_id="cmd-2")
    # Named by one of its record ids, the entry is found too.
    (pending_id,) = [rid for rid, line in store.get_order(ORDER_ID).ledger.items() if line.state == "pending"]
    reverse = {"command": "reverse", "order_id": ORDER_ID, "entry": pending_id, "reason": "booked to the wrong order"}
    run(store, reverse, NOW + timedelta(hours=2), command_id="cmd-3")
    order = store.get_order(ORDER_ID)
    assert order is not None and len(order.ledger) == 3  # pending, confirmed, reversed: nothing edited
    assert (order.paid_amount, money(order.ledger).pending_in, order.payment_confirmed) == (0, 0, False)
    for again in (reverse, {**reverse, "command": "confirm"}):
        problem = refused(store, again, NOW + timedelta(hours=3))
        assert problem.status == 409 and "reversed" in problem.reason


def test_an_entry_reported_by_a_provider_is_confirmed_or_reversed_with_its_own_money():
    store = InMemoryOrderStore()
    created(store)
    # An Alipay refund reported pending (cumulative: the payment's refunded total).
    fact = MoneyFact(provider="alipay", kind=MoneyKind.REFUND, reference="2026120122001400001#R1",
                     state=MoneyState.PENDING, amount=30000, currency="CNY", method=MethodClass.ONLINE,
                     payment_reference="2026120122001400001", occurred_at=NOW - timedelta(hours=1), cumulative=True)
    event = OrderEvent(channel="mall", order_id=ORDER_ID, source="alipay", event_id="ali-1", channel_code="refund",
                       event_time=fact.occurred_at, money=(fact,))
    deliver(store, IntakeMessage.wrap("alipay", "2026-12-01T05:00:00.000+00:00", "r", "", {}, b"x", events=(event,)))
    prepared = run(store, {"command": "confirm", "order_id": ORDER_ID, "provider": "alipay", "kind": "refund",
                           "reference": "2026120122001400001#R1", "reason": "refund seen on the Alipay bill"})
    c = prepared.command
    assert (c.provider, c.method, c.cumulative, c.payment_reference, c.amount) == (
        "alipay", MethodClass.ONLINE, True, "2026120122001400001", 30000)
    order = store.get_order(ORDER_ID)
    assert order is not None and order.refunded_amount == 30000
    from orderhub.payments.ledger import movements

    (movement,) = movements(order.ledger)
    assert (movement.state, movement.conflicting) == (MoneyState.CONFIRMED, False)


def test_what_a_person_repeats_of_the_entry_must_be_the_entrys():
    store = InMemoryOrderStore()
    created(store)
    run(store, transfer())
    base = {"command": "confirm", "order_id": ORDER_ID, "entry": "bank:payment:CMB20261201000042", "reason": "r"}
    problem = refused(store, {**base, "amount": 129000})
    assert problem.status == 422 and "1299.00 CNY" in problem.reason and "1290.00 CNY" in problem.reason
    assert refused(store, {**base, "currency": "USD"}).status == 422
    assert refused(store, {**base, "method": "credit"}).status == 422
    # Confirmed before it was recorded: a typo in the time, refused.
    assert refused(store, {**base, "occurred_at": "2026-11-30T09:00:00+08:00"}).status == 422


def test_an_entry_that_is_not_in_the_orders_ledger_is_not_found_and_the_answer_lists_what_is():
    store = InMemoryOrderStore()
    created(store)
    run(store, transfer())
    problem = refused(store, {"command": "reverse", "order_id": ORDER_ID, "entry": "bank:payment:NOPE",
                              "reason": "r"})
    assert problem.status == 404 and "bank:payment:CMB20261201000042" in problem.reason


@pytest.mark.parametrize(("request_fields", "status", "says"), [
    ({"order_id": hub_order_id("mall", "NOT-THERE")}, 404, "not found"),
    ({"order_id": None, "channel": "mall", "channel_order_id": "NOT-THERE"}, 404, "mall:NOT-THERE"),
    ({"order_id": None}, 400, "name the order"),
    ({"channel": "mall", "channel_order_id": ORDER_NO}, 400, "not both"),
    ({"ammount": 1}, 400, "ammount"),
    ({"command_id": "mine"}, 400, "set by the hub"),
    ({"actor": "me"}, 400, "set by the hub"),
    ({"amount": None}, 400, "amount"),
    ({"amount": 0}, 400, "amount"),
    ({"amount": 12.5}, 400, "amount"),
    ({"reference": None}, 400, "reference"),
    ({"reason": None}, 400, "reason"),
    ({"reason": "  "}, 400, "reason"),
    ({"reason": "x" * 201}, 400, "reason"),
    ({"currency": "USD"}, 422, "the order is in CNY"),
    ({"method": "online"}, 400, "bank transfer or a sale on credit"),
    ({"provider": "wechatpay"}, 400, "provider 'bank'"),
    ({"entry": "bank:payment:X"}, 400, "not an entry"),
    ({"occurred_at": "2026-12-01 10:00"}, 400, "UTC offset"),
    ({"occurred_at": "yesterday"}, 400, "ISO 8601"),
    ({"occurred_at": "2026-12-01T14:11:00+08:00"}, 422, "future"),
    ({"command": "cancel"}, 400, "command"),
])
def test_a_bad_request_is_refused_with_its_status_and_reason(request_fields, status, says):
    store = InMemoryOrderStore()
    created(store)
    problem = refused(store, transfer(**request_fields))
    assert (problem.status, says in problem.reason) == (status, True), problem.reason


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(CommandRefused) as caught:
        commands.read_request([1, 2])
    assert caught.value.status == 400


def test_a_credit_sale_and_a_refund_by_transfer_are_recorded_too():
    store = InMemoryOrderStore()
    created(store)
    credit = run(store, transfer(method="credit", reference="HT-2026-118")).command
    assert (credit.provider, credit.method) == ("credit", MethodClass.CREDIT)
    refund = run(store, transfer(kind="refund", reference="CMB-OUT-7", amount=5000,
                                 payment_reference="CMB20261201000042"), command_id="cmd-2").command
    assert (refund.kind, refund.payment_reference) == (MoneyKind.REFUND, "CMB20261201000042")
    assert money(store.get_order(ORDER_ID).ledger).pending_out == 5000


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("123.45", "CNY", 12345), ("123.4", "CNY", 12340), ("123", "CNY", 12300), ("0.01", "CNY", 1),
    ("1299.00", "CNY", 129900), ("1234", "JPY", 1234), ("1.234", "KWD", 1234), (" 8.80 ", "CNY", 880),
    ("10000000000.00", "CNY", 10**12),
])
def test_yuan_are_converted_to_minor_units_exactly(text, currency, minor):
    assert minor_units(text, currency) == minor


@pytest.mark.parametrize(("text", "currency"), [
    ("12.345", "CNY"), ("1,234.00", "CNY"), ("-1", "CNY"), ("1e3", "CNY"), ("", "CNY"), ("0", "CNY"),
    ("0.00", "CNY"), ("10000000000.01", "CNY"), ("¥12", "CNY"), ("12.5", "JPY"), ("12.", "CNY"), (".5", "CNY"),
    ("NaN", "CNY"),
])
def test_what_is_not_an_exact_amount_is_refused(text, currency):
    with pytest.raises(CommandRefused) as caught:
        minor_units(text, currency)
    assert caught.value.status == 400


@given(amount=st.integers(1, 10**12), currency=st.sampled_from(["CNY", "USD", "JPY", "KWD"]))
def test_an_amount_written_out_reads_back_to_the_same_minor_units(amount, currency):
    assert minor_units(major(amount, currency), currency) == amount


def test_an_order_is_named_by_hub_id_or_channel_and_number():
    assert order_ref(ORDER_ID) == {"order_id": ORDER_ID}
    assert order_ref("mall:M20261201001") == {"channel": "mall", "channel_order_id": "M20261201001"}
    assert order_ref("store-sh-01:SH01:0001") == {"channel": "store-sh-01", "channel_order_id": "SH01:0001"}
    for junk in ("M20261201001", ":M1", "mall:", ""):
        with pytest.raises(CommandRefused):
            order_ref(junk)


STEPS = ("record_transfer", "confirm", "reverse")


@given(deliveries=st.lists(st.sampled_from(STEPS), min_size=1, max_size=8).flatmap(
    lambda extra: st.permutations([*STEPS, *extra])))
def test_any_arrival_order_and_duplication_of_one_transfers_commands_books_the_same(deliveries):
    # Given the three commands of one transfer, prepared in their order (as finance gives them)
    source = InMemoryOrderStore()
    created(source)
    messages = {}
    for n, step in enumerate(STEPS):
        request = transfer() if step == "record_transfer" else {
            "command": step, "order_id": ORDER_ID, "entry": "bank:payment:CMB20261201000042", "reason": step}
        at = NOW + timedelta(hours=n)
        queue = Queue()
        submit(prepare(request, source, at, command_id=f"cmd-{step}", actor="ops-token"), queue, at)
        messages[step] = queue.sent[0]
        deliver(source, queue.sent[0], at)
    # When the queue delivers them in any order, some more than once
    store = InMemoryOrderStore()
    created(store)
    for step in deliveries:
        deliver(store, messages[step], NOW + timedelta(hours=3))
    # Then the ledger holds the same records and the money is the same: reversed, nothing paid
    order, expected = store.get_order(ORDER_ID), source.get_order(ORDER_ID)
    assert order is not None and expected is not None
    assert order.ledger == expected.ledger and len(order.ledger) == 3
    assert set(store.records) == set(source.records)
    assert (order.paid_amount, money(order.ledger).pending_in) == (0, 0)
