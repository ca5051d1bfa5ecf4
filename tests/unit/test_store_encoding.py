"""What goes into DynamoDB: exact round trips, billed sizes, compressed raw bodies."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from unit.mall_events import created

from orderhub.channels.mall import CHANNEL
from orderhub.lifecycle.machine import apply_event
from orderhub.store.attributes import from_attr, item_size_bytes, to_attr, write_units
from orderhub.store.orders import EventLogEntry, entry_from_item, entry_to_item, order_from_item, order_to_item

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**15), 10**15) | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_attribute_encoding_round_trips(value):
    assert from_attr(to_attr(value)) == value


def test_an_order_round_trips_through_its_item():
    (event,) = CHANNEL.parse(json.dumps(created()).encode())
    order, _ = apply_event(None, event)
    assert order_from_item(order_to_item(order)) == order


def test_billed_size_follows_dynamodb_rules():
    # name bytes + value bytes; numbers: 1 byte per two significant digits + 1
    assert item_size_bytes({"a": {"S": "xyz"}}) == 1 + 3
    assert item_size_bytes({"n": {"N": "12345"}}) == 1 + 4
    assert write_units({"a": {"S": "x" * 1000}}) == 1
    assert write_units({"a": {"S": "x" * 1100}}) == 2


def test_raw_bodies_are_kept_exactly_and_stored_compressed():
    raw = json.dumps(created(), ensure_ascii=False).encode() * 3
    entry = EventLogEntry(order_id="oh_1", event_key="k", channel="mall", channel_event_id="e", channel_code="c",
                          kind="CREATED", event_time="t", received_at="t", outcome="applied", raw_body=raw)
    item = entry_to_item(entry)
    assert len(item["raw_z"]["B"]) < len(raw) / 2
    assert entry_from_item(item).raw_body == raw


def _order_through(*raws):
    order = None
    for raw in raws:
        (event,) = CHANNEL.parse(json.dumps(raw).encode())
        order, _ = apply_event(order, event)
    return order.model_copy(update={"version": 7, "created_in_hub_at": "2026-11-22T03:00:00.000+00:00",
                                    "updated_in_hub_at": "2026-11-22T03:04:00.000+00:00"})


def test_a_full_life_round_trips_through_the_compact_item():
    from unit.mall_events import mall_event, paid, refunded, shipped

    order = _order_through(created(), paid(), shipped(), mall_event(4, "order.delivered", 900),
                           refunded(5, 1000, 5000, "RF1"), refunded(6, 1100, 2000, "RF2"))
    assert order_from_item(order_to_item(order)) == order


def test_a_shipped_three_line_order_is_one_write_unit():
    from unit.mall_events import mall_event, paid, shipped

    three_lines = created()
    three_lines["order"]["lines"] = [{"sku": f"TEA-LJ-25{i}", "name": "明前龙井 250g 礼盒装", "quantity": 1,
                                      "unit_price": 8600} for i in range(3)]
    order = _order_through(three_lines, paid(), shipped(), mall_event(4, "order.delivered", 900),
                           mall_event(5, "order.completed", 5000))
    assert write_units(order_to_item(order)) == 1


def _full_life():
    from unit.mall_events import mall_event, paid, refunded, shipped

    return _order_through(created(), paid(), shipped(), mall_event(4, "order.delivered", 900),
                          refunded(5, 1000, 5000, "RF1"))


def test_the_order_item_keeps_the_key_the_lock_and_what_operators_scan_for_as_attributes():
    item = order_to_item(_full_life())
    assert set(item) - {"o", "oz"} == {"order_id", "version", "ch", "cid", "st"} and len(item) == 6
    assert (item["version"], item["ch"], item["cid"], item["st"]) == (
        {"N": "7"}, {"S": "mall"}, {"S": "M1"}, {"S": "DELIVERED"})


def test_a_stream_record_image_is_plain_json_and_reads_back():
    order = _full_life()
    image = json.loads(json.dumps(order_to_item(order)))  # what a Lambda stream event carries
    assert order_from_item(image) == order


def test_a_large_order_is_stored_compressed_and_stays_one_write_unit():
    from unit.mall_events import mall_event, paid, refunded

    order = _order_through(created(), paid(), *(refunded(3 + i, 10 + i, 100, f"RF-{i:02d}-{'x' * 40}")
                                                for i in range(6)), mall_event(20, "order.delivered", 900))
    item = order_to_item(order)
    assert "oz" in item and write_units(item) == 1
    assert order_from_item(item) == order


# Written by the previous codec (one attribute per field): such items stay readable.
V1_ITEM = {
    "order_id": {"S": "oh_d4abng3ozqfddupbilrpch6i"}, "version": {"N": "7"}, "ch": {"S": "mall"}, "cid": {"S": "M1"},
    "shop": {"S": "mini-01"}, "cur": {"S": "CNY"}, "ptx": {"S": "420002"}, "car": {"S": "SF"}, "trk": {"S": "SF001"},
    "src": {"S": "evt_M1_001"}, "srct": {"S": "2026-11-21T01:00:00.000+00:00"},
    "let": {"S": "2026-11-21T17:40:00.000+00:00"}, "hc": {"S": "2026-11-22T03:00:00.000+00:00"},
    "hu": {"S": "2026-11-22T03:04:00.000+00:00"}, "tot": {"N": "25800"}, "paid": {"N": "25800"},
    "rfd": {"N": "5000"}, "st": {"S": "DELIVERED"}, "pst": {"S": "PARTIALLY_REFUNDED"}, "fst": {"S": "DELIVERED"},
    "lst": {"S": "NONE"}, "ast": {"S": "PARTIALLY_REFUNDED"},
    "dts": {"L": [{"S": "2026-11-21T01:00:00.000+00:00"}, {"S": "evt_M1_001"}]},
    "pts": {"L": [{"S": "2026-11-21T01:01:00.000+00:00"}, {"S": "evt_M1_002"}]},
    "sts": {"L": [{"S": "2026-11-21T02:00:00.000+00:00"}, {"S": "evt_M1_003"}]},
    "rgs": {"L": [{"S": "2026-11-21T01:00:00.000+00:00"}, {"S": "evt_M1_001"}]},
    "ms": {"M": {"c": {"S": "2026-11-21T01:00:00.000+00:00"}, "p": {"S": "2026-11-21T01:01:00.000+00:00"},
                 "sr": {"S": "2026-11-21T02:00:00.000+00:00"}, "d": {"S": "2026-11-21T16:00:00.000+00:00"}}},
    "ln": {"L": [{"L": [{"S": "TEA-LJ-250"}, {"S": ""}, {"N": "2"}, {"N": "12900"}]}]},
    "rg": {"L": [{"S": "浙江省"}, {"S": "杭州市"}]},
    "as": {"M": {"RF1": {"L": [{"S": "REFUNDED"}, {"S": "REFUND_ONLY"}, {"N": "5000"}, {"S": "test"},
                               {"S": "order.refunded"}, {"S": "2026-11-21T17:40:00.000+00:00"}, {"S": "evt_M1_005"},
                               {"S": "2026-11-21T17:40:00.000+00:00"}]}}},
}


def test_an_item_in_the_previous_layout_still_reads():
    assert order_from_item(V1_ITEM) == _full_life()


_text = st.text(max_size=30)
_keys = st.tuples(_text.filter(lambda t: "#" not in t), _text).map(lambda p: f"{p[0]}#{p[1]}")
entries = st.builds(
    EventLogEntry, order_id=_text, event_key=_keys | _text, channel=_text, channel_event_id=_text, channel_code=_text,
    kind=st.none() | _text, event_time=_text, received_at=_text, outcome=_text, status_before=st.none() | _text,
    status_after=st.none() | _text, note=_text, raw_body=st.binary(max_size=1200),
    raw_headers=st.dictionaries(_text, _text, max_size=3), expires_at=st.none() | st.integers(0, 2**40))


@given(entries, st.booleans())
def test_a_log_entry_round_trips_through_its_item(entry, spelled_by_its_key):
    if spelled_by_its_key:  # the usual case: the key is <event time>#<event id>
        key_time, _, log_id = entry.event_key.partition("#")
        entry = entry.model_copy(update={"event_time": key_time, "channel_event_id": log_id})
    item = entry_to_item(entry)
    assert {"order_id", "event_key", "channel", "received_at", "outcome"} <= set(item)  # replay filters on these
    assert entry_from_item(item) == entry


@given(entries)
def test_a_log_item_in_the_previous_layout_still_reads(entry):
    import zlib

    from orderhub.store.attributes import to_item

    values = {name: getattr(entry, name) for name in EventLogEntry.model_fields if name != "raw_body"}
    if len(entry.raw_body) > 512:
        values["raw_z"] = zlib.compress(entry.raw_body)
    else:
        values["raw"] = entry.raw_body
    assert entry_from_item(to_item(values)) == entry


class _OneTableClient:
    """Just enough of a DynamoDB client for the orders table: items by key, conditions ignored."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def put_item(self, TableName, Item, **kwargs):  # noqa: N803 - boto3's names
        self.items[Item["order_id"]["S"]] = json.loads(json.dumps(Item))  # stored as DynamoDB keeps it

    def get_item(self, TableName, Key, **kwargs):  # noqa: N803
        item = self.items.get(Key["order_id"]["S"])
        return {"Item": json.loads(json.dumps(item))} if item else {}


def test_the_store_reads_back_the_order_it_wrote_and_decodes_anything_else():
    from orderhub.store.orders import DynamoOrderStore

    client = _OneTableClient()
    store = DynamoOrderStore(client=client, orders_table="orders", events_table="events")
    order = _full_life()
    store.put_order(order, expected_version=6)
    assert store.get_order(order.order_id) is order  # the item it wrote: already decoded
    newer = order.model_copy(update={"version": 8, "hold_reason": "written elsewhere"})
    client.items[order.order_id] = order_to_item(newer)  # another execution environment's write
    assert store.get_order(order.order_id) == newer
