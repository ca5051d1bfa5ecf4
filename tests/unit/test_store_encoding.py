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
