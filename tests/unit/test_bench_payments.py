"""bench.payments counts what it says it counts: write units as DynamoDB bills them (an index on what it copies),
the anchor ledger's calls, first deliveries and resends apart, and streams of distinct notifications plus
resends of the same ones. No timing here: the bench measures, these check its counting."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench._support import Call, Recorder, physical
from bench.billing import Bill, bill_dynamodb
from bench.fake_dynamodb import hub_dynamo
from bench.payments import (
    Callback,
    Flow,
    IdempotentPutLedger,
    WriteUnits,
    alipay_stream,
    is_ledger,
    split,
    wechatpay_stream,
    with_idempotency_table,
)
from orderhub.clock import utc_iso
from orderhub.models.order import LedgerLine, MethodClass, MoneyKind, MoneyState
from orderhub.payments.ledger import LedgerRecord, business_date
from orderhub.store.attributes import item_size_bytes
from orderhub.store.ledger import booking_write_units, index_entry, record_to_item

AT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
PAYMENTS = physical("payments")
IDEMPOTENCY = physical("idempotency")


def record(reference: str = "4200000001", payload: str = "", source_event_id: str = "n1") -> LedgerRecord:
    line = LedgerLine(provider="wechatpay", kind=MoneyKind.PAYMENT, reference=reference, state=MoneyState.CONFIRMED,
                      amount=25800, currency="CNY", method=MethodClass.ONLINE, occurred_at=utc_iso(AT),
                      business_date=business_date(AT))
    return LedgerRecord(line=line, order_id="oh_a", channel="mall", channel_order_id="M1", source="wechatpay",
                        source_event_id=source_event_id, booked_at=utc_iso(AT), payload=payload)


def incompressible(size: int) -> str:
    """Text zlib cannot shrink (so the payload is kept as text, at its full size)."""
    import random

    rng = random.Random(3)
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(size))


@pytest.fixture(scope="module")
def wu() -> WriteUnits:
    return WriteUnits()


def test_a_ledger_put_bills_the_table_on_the_item_and_the_index_on_what_it_copies(wu):
    # Given a record whose payload takes the item past 1 KB, while the index copies only keys and `r`
    item = record_to_item(record(payload=incompressible(1500)))
    assert item_size_bytes(item) > 1024 and item_size_bytes(index_entry(item)) <= 1024
    # When its conditional put is counted
    counted = wu.of(Call("dynamodb", "PutItem", PAYMENTS, item=item))
    # Then the table bills 2 units and the index 1, as the store says
    assert counted == Counter({"PutItem payments": 2, "GSI write payments": 1})
    assert (counted["PutItem payments"], counted["GSI write payments"]) == booking_write_units(item)


def test_a_refused_ledger_put_bills_the_item_held_and_writes_no_index(wu):
    item = record_to_item(record())
    counted = wu.of(Call("dynamodb", "PutItem", PAYMENTS, item=item, old=item, ok=False))
    assert counted == Counter({"PutItem payments (failed condition)": 1})


def test_tables_without_a_narrow_index_are_counted_as_bench_billing_bills_them(wu):
    # Given writes to the orders table (no index) and to the exceptions table (an index copying ALL)
    big = {"order_id": {"S": "oh_a"}, "blob": {"S": "x" * 1500}}
    exception = {"order_id": {"S": "oh_a"}, "exception_key": {"S": "k"}, "state": {"S": "open"},
                 "sla_deadline": {"S": "2026-12-01"}, "blob": {"S": "y" * 1200}}
    calls = [Call("dynamodb", "PutItem", physical("orders"), item=big),
             Call("dynamodb", "PutItem", physical("orders"), item=big, old=big, ok=False),
             Call("dynamodb", "PutItem", physical("exceptions"), item=exception)]
    billed = Bill()
    bill_dynamodb(billed, calls)
    # Then the counts agree, and the check that compares them passes
    assert wu.total(calls) == +billed.wru
    assert wu.total(calls) == Counter({"PutItem orders": 2, "PutItem orders (failed condition)": 2,
                                       "PutItem exceptions": 2, "GSI write exceptions": 2})
    wu.check(calls)


def test_the_check_refuses_a_count_the_store_disagrees_with(wu, monkeypatch):
    item = record_to_item(record())
    monkeypatch.setattr(WriteUnits, "of", lambda self, c: Counter({"PutItem payments": 1, "GSI write payments": 2}))
    with pytest.raises(RuntimeError, match="the store says"):
        wu.check([Call("dynamodb", "PutItem", PAYMENTS, item=item)])


def test_the_anchor_books_a_callback_with_the_in_progress_put_the_put_and_the_completion_update():
    # Given the anchor ledger on the fake, recording
    recorder = Recorder()
    fake = with_idempotency_table(hub_dynamo(recorder))
    ledger = IdempotentPutLedger(fake, PAYMENTS)
    records = [record("4200000001", source_event_id="n1")]
    # When a callback's records are booked
    held = ledger.book(records)
    # Then Powertools' in-progress put, the plain put of the item and the completion update are made
    assert [(c.op, c.table, c.ok) for c in recorder.calls] == [
        ("PutItem", IDEMPOTENCY, True), ("PutItem", PAYMENTS, True), ("UpdateItem", IDEMPOTENCY, True)]
    assert held == {records[0].record_id: records[0].line}
    assert fake.tables[PAYMENTS][(records[0].record_id,)] == record_to_item(records[0])
    # And booked again, only the refused in-progress put is made
    recorder.clear()
    ledger.book(records)
    assert [(c.op, c.table, c.ok) for c in recorder.calls] == [("PutItem", IDEMPOTENCY, False)]


def test_write_units_are_split_by_provider_and_first_delivery_or_resend():
    # Given three messages' writes: a WeChat Pay first delivery that booked, its resend, an Alipay one that booked
    callbacks = [Callback("wechatpay", "payment", {}), Callback("wechatpay", "payment", {}, duplicate=True),
                 Callback("alipay", "payment", {})]
    per_message = [Counter({"PutItem payments": 1, "GSI write payments": 1, "PutItem order-events": 2}),
                   Counter({"PutItem order-events (failed condition)": 2}),
                   Counter({"PutItem payments": 1, "GSI write payments": 1, "PutItem orders": 1})]
    calls = [Counter({"PutItem payments": 1}), Counter(), Counter({"PutItem payments": 1})]
    flow = Flow(Bill(events=3), per_message, calls, hub_dynamo(), ledger=None)
    # When split
    parts = split(flow, callbacks)
    # Then each provider's first deliveries and resends are apart, with the records they booked
    first = parts[("wechatpay", False)]
    assert (first.messages, first.records, first.booking_messages) == (1, 1, 1)
    assert sum(v for k, v in first.whole.items() if is_ledger(k)) == 2
    resend = parts[("wechatpay", True)]
    assert (resend.messages, resend.records, sum(resend.whole.values())) == (1, 0, 2)
    assert parts[("alipay", False)].whole["PutItem orders"] == 1


def test_ledger_kinds_are_the_payments_table_its_index_and_the_idempotency_records():
    assert all(is_ledger(k) for k in ("PutItem payments", "GSI write payments", "PutItem payments (failed condition)",
                                      "PutItem idempotency (failed condition)", "UpdateItem idempotency"))
    assert not any(is_ledger(k) for k in ("PutItem orders", "PutItem order-events", "GetItem orders"))


@pytest.mark.parametrize("make", [wechatpay_stream, alipay_stream])
def test_a_stream_is_distinct_notifications_and_resends_of_the_same_ones(hub_config, make):
    # Given a stream of 30 distinct notifications
    stream = make(hub_config, 30, datetime.now(UTC).replace(microsecond=0))
    firsts = [c for c in stream.callbacks if not c.duplicate]
    resends = [c for c in stream.callbacks if c.duplicate]
    # Then there are 30 distinct bodies, and each resend carries the body of one of them, delivered after it
    assert len(firsts) == 30 == len({c.event["body"] for c in firsts})
    assert len(resends) == 3
    for resend in resends:
        at = stream.callbacks.index(resend)
        assert resend.event["body"] in {c.event["body"] for c in stream.callbacks[:at] if not c.duplicate}
    # And every notification is for an order the stream creates
    assert all(no.startswith(("WX", "AP")) for no in stream.orders) and stream.orders


def test_the_local_providers_notifications_in_a_stream_pass_the_hub(hub_config, monkeypatch):
    from orderhub.channels.base import ChannelSettings, InboundRequest
    from orderhub.channels.wechatpay import CHANNEL as WECHATPAY
    from orderhub.clock import FixedClock
    from orderhub.intake import accept_webhook

    # Given the hub's edge configured as config/local.toml says, a second after the stream was signed
    now = datetime.now(UTC).replace(microsecond=0)
    settings = {name: ChannelSettings(secrets=tuple(hub_config.channels[name].secrets),
                                      options={**hub_config.channels[name].options,
                                               **hub_config.channels[name].secret_options})
                for name in ("wechatpay", "alipay")}
    monkeypatch.setattr(WECHATPAY, "settings_source", lambda: settings["wechatpay"])
    queued = []

    class Queue:
        def send(self, message):
            queued.append(message)

    # When every callback of both streams, resends included, is posted
    callbacks = [c for make in (wechatpay_stream, alipay_stream) for c in make(hub_config, 12, now).callbacks]
    for c in callbacks:
        request = InboundRequest(c.provider, c.event["headers"], c.event["body"].encode(), "203.0.113.9")
        result = accept_webhook(request, "r", settings.get, Queue(), FixedClock(now + timedelta(seconds=1)))
        # Then each is accepted and queued
        assert result.reply.status_code == 200, result.rejection
    assert len(queued) == len(callbacks)
