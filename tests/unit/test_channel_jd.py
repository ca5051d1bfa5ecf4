"""The jd channel: one JOS orderInfoList element as the API returns it -> normalised events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.standins.platform_orders import Line, Receiver, jd_order
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.jd import CHANNEL, PAID_ONLY_IN, STATUS_MAP
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK, EventKind

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 19, 9, 30, tzinfo=CST)
LINES = [Line("TEA-BLC-100", "洞庭碧螺春 100g", Decimal("68.00"), 1), Line("CUP-CELADON-2", "龙泉青瓷茶杯两只装",
                                                                           Decimal("88.00"), 2)]
RECEIVER = Receiver("李测试", "13900000002", "广东省", "深圳市", "科技园南路 8 号")
STORIES = sorted((Path(__file__).parents[2] / "events" / "jd" / "stories").glob("*.json"))
ORDER_ID = 300119009999


def order(state: str = "WAIT_SELLER_STOCK_OUT", minutes: int = 5, **kwargs) -> dict:
    kwargs.setdefault("created", T0)
    kwargs.setdefault("paid", T0 + timedelta(minutes=1))
    return jd_order(ORDER_ID, state, T0 + timedelta(minutes=minutes), LINES, RECEIVER, **kwargs)


def parse(doc: dict, rules: FieldRules | None = None):
    body = json.dumps(doc, ensure_ascii=False).encode()
    (event,) = CHANNEL.parse(body, {}, rules) if rules else CHANNEL.parse(body)
    return event


def test_the_channel_is_pulled_so_a_webhook_call_is_refused():
    assert CHANNEL.push is False
    with pytest.raises(Unauthorized, match="pulled"):
        CHANNEL.authenticate(InboundRequest("jd", {}, b"{}", "203.0.113.1"), ChannelSettings(secrets=["s"]),
                             datetime.now(UTC))


def test_a_snapshot_is_keyed_by_order_and_modified_time_and_reads_camel_case_fields():
    event = parse(order(waybill=("2087", "JDVA00012345678"), state="WAIT_GOODS_RECEIVE_CONFIRM"))
    assert (event.channel_order_id, event.event_id) == (str(ORDER_ID), f"{ORDER_ID}@20261119093500")
    assert event.event_time == T0 + timedelta(minutes=5) and event.shop_id == "10622317"
    assert event.details is not None and event.details.total_amount == 6800 + 17600
    assert [(line.sku, line.quantity, line.unit_price) for line in event.details.lines] == [
        ("TEA-BLC-100", 1, 6800), ("CUP-CELADON-2", 2, 8800)]
    assert event.payment is not None and (event.payment.amount, event.payment.method) == (24400, "4-在线支付")
    assert event.shipment is not None and (event.shipment.carrier, event.shipment.tracking_no) == (
        "2087", "JDVA00012345678")


def test_only_province_and_city_of_the_encrypted_consignee_are_kept():
    event = parse(order())
    assert (event.details.region.province, event.details.region.city) == ("广东", "深圳市")
    dumped = event.model_dump_json()
    assert "AAS/" not in dumped and "139*******2" not in dumped


@pytest.mark.parametrize("state", sorted(STATUS_MAP))
def test_every_order_state_produces_its_mapped_milestones_and_hold(state):
    kinds, hold = STATUS_MAP[state]
    event = parse(order(state))
    # The sample order was paid (paymentConfirmTime set): a state that speaks says so too.
    paid = (EventKind.PAID,) if kinds and EventKind.PAID not in kinds else ()
    assert event.kinds == kinds + paid and event.hold == hold and event.gaps == ()
    assert event.channel_code == f"orderState={state}"
    assert EventKind.OUTBOUND not in event.kinds  # ST-4: JD saying "shipped" is a ship request


def test_a_cancelled_snapshot_keeps_the_payment_it_records_and_an_unpaid_one_stays_unpaid():
    assert EventKind.PAID in parse(order("TRADE_CANCELED")).kinds
    unpaid = parse(order("TRADE_CANCELED", paid=None))
    assert EventKind.PAID not in unpaid.kinds and unpaid.payment is None


@pytest.mark.parametrize("state", sorted(STATUS_MAP))
def test_cash_on_delivery_is_paid_only_once_jd_confirms_the_money(state):
    event = parse(order(state, pay_type="1-货到付款", paid=None))
    paid_in = PAID_ONLY_IN["1"]
    assert (EventKind.PAID in event.kinds) == (state in paid_in and EventKind.PAID in STATUS_MAP[state][0])
    assert (event.payment is not None) == (EventKind.PAID in event.kinds)


def test_a_locked_order_is_held_and_released_when_jd_unlocks_it():
    events = [parse(order("WAIT_SELLER_STOCK_OUT", 1)), parse(order("LOCKED", 2))]
    held, _ = apply_event(apply_event(None, events[0])[0], events[1])
    assert held.status.value == "ON_HOLD"
    released, _ = apply_event(held, parse(order("WAIT_SELLER_STOCK_OUT", 3)))
    assert released.status.value == "PAID" and released.hold_reason == ""


def test_an_unknown_state_is_a_gap_and_keeps_the_last_good_status():
    good, _ = apply_event(None, parse(order(minutes=1)))
    event = parse(order("WAIT_SOMETHING_NEW", 9))
    assert event.gaps == ("orderState=WAIT_SOMETHING_NEW",) and event.kinds == () and event.hold is None
    after, _ = apply_event(good, event)
    assert after.status == good.status


def test_unpaid_sentinel_payment_time_is_no_payment_time():
    event = parse(order(paid=None))
    assert event.event_time == T0 + timedelta(minutes=5)  # and nothing failed on "0001-01-01 00:00:00"


@pytest.mark.parametrize("key, value, reason", [
    ("orderId", None, "missing orderId"), ("orderId", "30011900999X", "orderId must be digits"),
    ("modified", None, "missing modified"), ("modified", "2026-11-19T09:35:00", "modified must be"),
    ("orderPayment", "24.4.0", "orderPayment is not an amount"),
    ("itemInfoList", {"skuId": "1"}, "itemInfoList must be a list"),
    ("consigneeInfo", "广东", "consigneeInfo must be an object"),
])
def test_malformed_documents_are_rejected_with_the_reason(key, value, reason):
    doc = order()
    if value is None:
        del doc[key]
    else:
        doc[key] = value
    with pytest.raises(Malformed, match=reason):
        parse(doc)


def test_an_item_without_a_quantity_is_malformed():
    doc = order()
    doc["itemInfoList"][1]["itemTotal"] = "0"
    with pytest.raises(Malformed, match=r"itemInfoList\[1\].itemTotal"):
        parse(doc)


def test_an_unknown_field_is_reported_as_drift_and_a_drop_rule_removes_it():
    doc = order()
    doc["orderIdSuffix"] = "-1"
    doc["itemInfoList"][0]["skuUuid"] = "x"
    assert parse(doc).drift == ("itemInfoList[].skuUuid", "orderIdSuffix")
    assert parse(doc, FieldRules(drop=("orderIdSuffix", "itemInfoList[].skuUuid"))).drift == ()


def test_every_story_ends_where_it_says():
    for path in STORIES:
        story = json.loads(path.read_text(encoding="utf-8"))
        result, _ = fold([parse(s) for s in story["snapshots"]])
        assert summary(result) == story["expect"], path.name


def fold(events):
    result, statuses = None, []
    for event in events:
        result, _ = apply_event(result, event)
        statuses.append(result.status)
    return result, statuses


def summary(result) -> dict:
    return {"channel": result.channel, "channel_order_id": result.channel_order_id, "status": result.status.value,
            "payment_status": result.payment_status.value, "fulfillment_status": result.fulfillment_status.value,
            "aftersale_status": result.aftersale_status.value}


@st.composite
def arrivals(draw):
    story = json.loads(draw(st.sampled_from(STORIES)).read_text(encoding="utf-8"))
    life = [parse(s) for s in story["snapshots"]]
    repeats = draw(st.lists(st.sampled_from(life), max_size=len(life) * 2))
    return life, draw(st.permutations(life + repeats))


@settings(max_examples=200, deadline=None)
@given(arrivals())
def test_any_arrival_order_with_duplicates_gives_the_order_of_the_sorted_snapshots(case):
    life, arrived = case
    expected, _ = fold(sorted(life, key=lambda e: (e.event_time, e.event_id)))
    actual, statuses = fold(arrived)
    assert actual.model_dump(exclude=HUB_BOOKKEEPING_FIELDS) == expected.model_dump(exclude=HUB_BOOKKEEPING_FIELDS)
    assert all(STATUS_RANK[a] <= STATUS_RANK[b] for a, b in zip(statuses, statuses[1:], strict=False))
