"""The pdd channel: one order_sn_list element as the API returns it -> normalised events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.standins.platform_orders import Line, Receiver, pdd_order
from infra.standins.platforms import encode
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.pdd import (
    AFTER_SALES_MAP,
    CHANNEL,
    CONFIRM_MAP,
    GROUP_MAP,
    REFUND_STATUS_MAP,
    RISK_MAP,
    STATUS_MAP,
    STEP_MAP,
)
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK, EventKind

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 20, 13, 0, tzinfo=CST)
LINE = Line("TEA-PE-357", "普洱七子饼 357g", Decimal("219.50"), 1)
RECEIVER = Receiver("王测试", "15800000003", "四川省", "成都市", "天府大道 66 号")
STORIES = sorted((Path(__file__).parents[2] / "events" / "pdd" / "stories").glob("*.json"))
SN = "261120-500000000009999"


def order(status: int = 1, minutes: int = 5, **kwargs) -> dict:
    kwargs.setdefault("created", T0)
    kwargs.setdefault("confirm", T0 + timedelta(minutes=1))
    return pdd_order(SN, status, T0 + timedelta(minutes=minutes), [LINE], RECEIVER, **kwargs)


def parse(doc: dict, rules: FieldRules | None = None):
    body = encode(doc)  # as the platform sends it: money as JSON numbers
    (event,) = CHANNEL.parse(body, {}, rules) if rules else CHANNEL.parse(body)
    return event


def test_the_channel_is_pulled_so_a_webhook_call_is_refused():
    assert CHANNEL.push is False
    with pytest.raises(Unauthorized, match="pulled"):
        CHANNEL.authenticate(InboundRequest("pdd", {}, b"{}", "203.0.113.1"), ChannelSettings(secrets=["s"]),
                             datetime.now(UTC))


def test_amounts_sent_as_json_numbers_are_read_from_the_text_not_through_float():
    body = encode(order()).replace(b'"pay_amount":219.5', b'"pay_amount":0.29').replace(
        b'"goods_price":219.5', b'"goods_price":0.29')
    assert b'"pay_amount":0.29' in body  # 0.29 * 100 is 28.999999999999996 in binary floating point
    (event,) = CHANNEL.parse(body)
    assert event.details is not None and event.details.total_amount == 29
    assert event.details.lines[0].unit_price == 29 and event.payment is not None and event.payment.amount == 29


def test_a_snapshot_is_keyed_by_order_number_and_update_time():
    event = parse(order(waybill=(115, "ZTO75300000001"), status=2))
    assert (event.channel_order_id, event.event_id) == (SN, f"{SN}@20261120130500")
    assert event.event_time == T0 + timedelta(minutes=5)
    assert event.shipment is not None
    assert (event.shipment.carrier, event.shipment.tracking_no) == ("115", "ZTO75300000001")
    assert event.payment is not None and (event.payment.amount, event.payment.method) == (21950, "WEIXIN")


def test_only_province_and_city_are_kept():
    event = parse(order())
    assert (event.details.region.province, event.details.region.city) == ("四川省", "成都市")
    dumped = event.model_dump_json()
    assert "王测试" not in dumped and "15800000003" not in dumped and "天府大道" not in dumped


@pytest.mark.parametrize("status", sorted(STATUS_MAP))
def test_every_order_status_produces_its_mapped_milestones(status):
    event = parse(order(status))
    assert event.kinds == STATUS_MAP[status] and event.hold == "" and event.gaps == ()
    assert EventKind.OUTBOUND not in event.kinds  # ST-4


@pytest.mark.parametrize("key, table", [("confirm_status", CONFIRM_MAP), ("group_status", GROUP_MAP),
                                        ("risk_control_status", RISK_MAP)])
def test_every_confirm_group_and_risk_code_adds_its_milestones_or_hold(key, table):
    for value, (extra, reason) in table.items():
        event = parse(order(1, **{key: value}))
        assert set(extra) <= set(event.kinds) and f"{key}={value}" in event.channel_code
        assert event.hold == (reason or "")


@pytest.mark.parametrize("step", sorted(STEP_MAP))
def test_presale_step_status_decides_the_payment_milestones(step):
    event = parse(order(1, step=(step, Decimal("40.00"))))
    assert [k for k in event.kinds if k in (EventKind.DEPOSIT_PAID, EventKind.PAID)] == list(STEP_MAP[step])
    assert (event.deposit is not None and event.deposit.amount == 4000) == (step == 1)


@pytest.mark.parametrize("value", sorted(AFTER_SALES_MAP))
def test_every_after_sales_status_becomes_its_case(value):
    event = parse(order(2, after_sales_status=value, refund_status=2 if value else 1))
    meaning = AFTER_SALES_MAP[value]
    if meaning is None:
        assert event.aftersales == ()
        return
    (case,) = event.aftersales
    assert (case.case_id, case.state, case.type, case.amount) == (SN, *meaning, 21950)
    assert case.channel_state == f"after_sales_status={value}"


@pytest.mark.parametrize("value", sorted(REFUND_STATUS_MAP))
def test_refund_status_speaks_when_there_is_no_detailed_after_sales_code(value):
    doc = order(1, refund_status=value)
    del doc["after_sales_status"]
    event = parse(doc)
    meaning = REFUND_STATUS_MAP[value]
    assert [(c.state, c.type) for c in event.aftersales] == ([] if meaning is None else [meaning])


def test_a_failed_group_buy_is_cancelled_and_closed_with_the_money_back():
    events = [parse(order(1, 1, confirm_status=0, group_status=0)),
              parse(order(1, 9, confirm_status=2, group_status=2, refund_status=4))]
    result = None
    for event in events:
        result, _ = apply_event(result, event)
    assert (result.status.value, result.payment_status.value) == ("CLOSED", "REFUNDED")


@pytest.mark.parametrize("key, value", [("order_status", 7), ("confirm_status", 9), ("after_sales_status", 33),
                                        ("refund_status", 6)])
def test_an_unknown_code_is_a_gap(key, value):
    doc = order(1)
    doc[key] = value
    if key == "refund_status":
        del doc["after_sales_status"]
    event = parse(doc)
    assert f"{key}={value}" in event.gaps
    if key == "order_status":
        assert event.kinds == () and event.hold is None and event.payment is None


@pytest.mark.parametrize("key, value, reason", [
    ("order_sn", "261120/5000", "order_sn must be"), ("updated_at", None, "missing updated_at"),
    ("updated_at", 1795000000, "updated_at must be"), ("order_status", None, "missing order_status"),
    ("order_status", "shipped", "order_status must be an integer code"),
    ("pay_amount", "-5", "pay_amount must be a non-negative"), ("item_list", "TEA", "item_list must be a list"),
])
def test_malformed_documents_are_rejected_with_the_reason(key, value, reason):
    doc = order()
    if value is None:
        del doc[key]
    else:
        doc[key] = value
    with pytest.raises(Malformed, match=reason):
        parse(doc)


def test_an_unknown_field_is_reported_as_drift_and_a_drop_rule_removes_it():
    doc = order()
    doc["order_sn_suffix"] = "A"
    assert parse(doc).drift == ("order_sn_suffix",)
    assert parse(doc, FieldRules(drop=("order_sn_suffix",))).drift == ()


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
