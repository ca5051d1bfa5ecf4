"""Order changes become domain events with stable ids; the committed schemas match the models."""

from __future__ import annotations

import json

import jsonschema
import pytest
from unit.mall_events import created, paid

from infra.schemas import render, schema_for, schema_path
from orderhub.bus.domain_events import events_for_change, events_for_stream_record
from orderhub.bus.publisher import EventBridgePublisher, PublishError
from orderhub.channels.mall import CHANNEL
from orderhub.lifecycle.machine import apply_event
from orderhub.store.orders import order_to_item


def order_after(*raws, version=1):
    order = None
    for raw in raws:
        (event,) = CHANNEL.parse(json.dumps(raw).encode())
        order, _ = apply_event(order, event)
    return order.model_copy(update={"version": version, "updated_in_hub_at": "2026-11-22T00:00:00.000+00:00"})


def test_a_new_order_announces_itself_and_its_first_status():
    entries = events_for_change(None, order_after(created()))
    assert [e.detail_type for e in entries] == ["OrderCreated", "OrderStatusChanged"]
    assert entries[1].detail.previous_status is None and entries[1].detail.status == "PENDING_PAYMENT"


def test_a_status_change_is_one_event_with_the_previous_status():
    old, new = order_after(created()), order_after(created(), paid(), version=2)
    (entry,) = events_for_change(old, new)
    assert entry.detail_type == "OrderStatusChanged"
    assert (entry.detail.previous_status, entry.detail.status) == ("PENDING_PAYMENT", "PAID")


def test_event_ids_are_the_same_each_time_the_same_change_is_processed():
    old, new = order_after(created()), order_after(created(), paid(), version=2)
    assert events_for_change(old, new)[0].detail.event_id == events_for_change(old, new)[0].detail.event_id
    other = order_after(created(), paid(), version=3)
    assert events_for_change(old, new)[0].detail.event_id != events_for_change(new, other)[0].detail.event_id


def test_stream_records_are_read_from_dynamodb_images():
    old, new = order_after(created()), order_after(created(), paid(), version=2)
    record = {"eventName": "MODIFY", "dynamodb": {"OldImage": order_to_item(old), "NewImage": order_to_item(new)}}
    (entry,) = events_for_stream_record(record)
    assert entry.detail.status == "PAID"
    assert events_for_stream_record({"eventName": "REMOVE", "dynamodb": {"OldImage": order_to_item(old)}}) == []


def test_domain_events_carry_no_personal_data():
    (_, entry) = events_for_change(None, order_after(created()))
    assert "13800138000" not in entry.detail.model_dump_json() and "张三" not in entry.detail.model_dump_json()


@pytest.mark.parametrize("detail_type", ["OrderCreated", "OrderStatusChanged", "OrderUpdated", "PaymentConfirmed",
                                         "PaymentReversed", "RefundBooked"])
def test_committed_schemas_match_the_models(detail_type):
    assert schema_path(detail_type).read_text(encoding="utf-8") == render(detail_type), \
        "run `python -m infra.schemas` and commit events/schemas/"


def test_published_events_validate_against_their_schema():
    for entry in events_for_change(None, order_after(created())):
        envelope = {"source": "orderhub.orders", "detail-type": entry.detail_type,
                    "detail": json.loads(entry.detail.model_dump_json())}
        jsonschema.validate(envelope, schema_for(entry.detail_type))


class FakeEvents:
    def __init__(self, failed: int):
        self.failed = failed
        self.calls: list[list] = []

    def put_events(self, Entries):  # noqa: N803 - boto3's parameter name
        self.calls.append(Entries)
        ok, failed = [{"EventId": "x"}], [{"ErrorCode": "ThrottlingException"}]
        results = ok * (len(Entries) - self.failed) + failed * self.failed
        return {"FailedEntryCount": self.failed, "Entries": results}


def test_the_publisher_sends_chunks_of_ten():
    fake = FakeEvents(failed=0)
    entries = events_for_change(None, order_after(created())) * 6
    EventBridgePublisher("bus", client=fake).publish(entries)
    assert [len(c) for c in fake.calls] == [10, 2]
    assert fake.calls[0][0]["Source"] == "orderhub.orders" and fake.calls[0][0]["EventBusName"] == "bus"


def test_a_partially_failed_put_events_is_an_error_not_a_success():
    with pytest.raises(PublishError, match="ThrottlingException"):
        publisher = EventBridgePublisher("bus", client=FakeEvents(failed=1))
        publisher.publish(events_for_change(None, order_after(created())))


def _with_ledger(order, *lines, version):
    from orderhub.lifecycle.machine import with_ledger

    return with_ledger(order, {**order.ledger, **{line.record_id: line for line in lines}}).model_copy(
        update={"version": version})


def test_money_events_tell_each_movement_once_as_it_is_confirmed_reversed_or_refunded():
    from unit.exception_builders import movement

    from orderhub.models.order import MoneyKind, MoneyState

    base = order_after(created(), paid())
    pay = movement("4200001", 25800, 5)
    refund_pending = movement("50300001", 5000, 60, kind=MoneyKind.REFUND, state=MoneyState.PENDING,
                              payment_reference="4200001")
    v2 = _with_ledger(base, pay, version=2)
    v3 = _with_ledger(v2, refund_pending, version=3)
    v4 = _with_ledger(v3, refund_pending.model_copy(update={"state": MoneyState.REVERSED}), version=4)
    kinds = [[e.detail_type for e in events_for_change(a, b) if e.source == "orderhub.payments"]
             for a, b in ((base, v2), (v2, v3), (v3, v4))]
    assert kinds == [["PaymentConfirmed"], ["RefundBooked"], ["PaymentReversed"]]
    (confirmed,) = [e for e in events_for_change(base, v2) if e.detail_type == "PaymentConfirmed"]
    assert confirmed.detail.movement.reference == "4200001" and confirmed.detail.paid_amount == 25800
    assert confirmed.to_put_events_entry("bus")["Source"] == "orderhub.payments"
    # The same movement seen again by a later change (or a retried stream record) is not told again
    v5 = v4.model_copy(update={"version": 5, "shop_id": "other"})
    assert [e.detail_type for e in events_for_change(v4, v5)] == ["OrderUpdated"]
    again = [e.detail.event_id for e in events_for_change(base, v2) if e.source == "orderhub.payments"]
    assert again == [confirmed.detail.event_id]
    for entry in events_for_change(base, v2):
        envelope = {"source": entry.source, "detail-type": entry.detail_type,
                    "detail": json.loads(entry.detail.model_dump_json())}
        jsonschema.validate(envelope, schema_for(entry.detail_type))
