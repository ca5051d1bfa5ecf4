"""Every DynamoDB key the status mapper derives from channel text stays within DynamoDB's limits
(partition key 2,048 bytes, sort key 1,024) for any value the event model accepts: order ids are a
hash of the channel's id, the log key is the event time and the channel's event id (at most 128
characters), a waybill link is the tracking number (at most 64). Widest case: every character four
bytes of UTF-8. Checked on moto, which refuses an over-long key, and asserted here as well.
(Lone surrogates never get this far: the channels' JSON reader refuses them with a 400; the
channel-health keys are a hash whatever the text: tests/unit/test_health_store.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from unit.moto_tables import create_order_tables

from orderhub.clock import FixedClock
from orderhub.lifecycle.statuses import EventKind, LogisticsStatus
from orderhub.mapping import apply_to_store
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import LogisticsFact, OrderEvent, ShipmentFact
from orderhub.store.orders import DynamoOrderStore

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
KEY_NAMES = {"order_id": 2_048, "event_key": 1_024}  # the tables' keys and their limits in bytes
UNICODE = st.characters(blacklist_categories=("Cs",))  # any character but a lone surrogate


def channel_text(max_chars: int):
    return (st.text(UNICODE, min_size=1, max_size=max_chars)
            | st.sampled_from(["😀", "中", "a", "\x00"]).map(lambda c: c * max_chars))  # the widest


class KeyRecordingClient:
    def __init__(self, client) -> None:
        self._client = client
        self.keys: list[dict] = []

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(**kwargs):
            for carrier in (kwargs.get("Key"), kwargs.get("Item")):
                if carrier:
                    self.keys.append({k: v["S"] for k, v in carrier.items() if k in KEY_NAMES})
            return method(**kwargs)

        return call


def order_store() -> tuple[DynamoOrderStore, KeyRecordingClient]:
    client = boto3.client("dynamodb", region_name="ap-southeast-1")
    create_order_tables(client, events="events")
    recording = KeyRecordingClient(client)
    return DynamoOrderStore(recording, "orders", "events"), recording


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order_no=channel_text(64), event_id=channel_text(128), carrier=channel_text(32),
       tracking_no=channel_text(64), callback_id=channel_text(128), code=channel_text(200))
def test_keys_made_of_any_channel_text_the_model_accepts_fit_dynamodb(order_no, event_id, carrier, tracking_no,
                                                                       callback_id, code):
    shipped = OrderEvent(channel="mall", channel_order_id=order_no, event_id=event_id, channel_code=code,
                         kinds=(EventKind.CREATED, EventKind.SHIP_REQUESTED), event_time=NOW,
                         shipment=ShipmentFact(carrier=carrier, tracking_no=tracking_no))
    scanned = OrderEvent(channel="", source="kuaidi100", event_id=callback_id, channel_code=code, event_time=NOW,
                         kinds=(EventKind.PICKED_UP,),
                         logistics=LogisticsFact(state=LogisticsStatus.IN_TRANSIT, tracking_no=tracking_no))
    message = IntakeMessage.wrap("mall", "2026-11-22T03:00:00.000+00:00", "req-1", "203.0.113.7", {}, b"{}")
    with mock_aws():
        store, recording = order_store()
        # The order is created with its waybill, then found by it: every key read and written fits
        first = apply_to_store(shipped, message, store, FixedClock(NOW))
        second = apply_to_store(scanned, message, store, FixedClock(NOW))
        assert second.order_id == first.order_id and first.outcome == "applied"
        assert {e.channel_event_id for e in store.list_events(first.order_id)} == {event_id, callback_id}
    assert recording.keys
    for key in recording.keys:
        for name, value in key.items():
            assert len(value.encode()) <= KEY_NAMES[name], (name, len(value.encode()))
