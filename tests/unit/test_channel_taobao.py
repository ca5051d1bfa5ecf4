"""The taobao channel: one TOP trade snapshot as the API returns it -> normalised events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.standins.platform_orders import Line, Receiver, taobao_trade
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.taobao import CHANNEL, REFUND_MAP, STATUS_MAP, STEP_MAP
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK, AftersaleState, EventKind

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 18, 9, 0, tzinfo=CST)
LINE = Line("TEA-LJ-250", "明前龙井 250g", Decimal("129.00"), 2)
RECEIVER = Receiver("张测试", "13800000001", "浙江省", "杭州市", "文三路 100 号")
STORIES = sorted((Path(__file__).parents[2] / "events" / "taobao" / "stories").glob("*.json"))
TID = 4031118000000009999


def trade(status: str = "WAIT_SELLER_SEND_GOODS", minutes: int = 5, **kwargs) -> dict:
    kwargs.setdefault("created", T0)
    if status not in ("WAIT_BUYER_PAY", "TRADE_NO_CREATE_PAY", "TRADE_CLOSED_BY_TAOBAO", "PAY_PENDING",
                      "WAIT_PRE_AUTH_CONFIRM"):
        kwargs.setdefault("pay_time", T0 + timedelta(minutes=1))
    return taobao_trade(TID, status, T0 + timedelta(minutes=minutes), [LINE], RECEIVER, **kwargs)


def parse(doc: dict, rules: FieldRules | None = None):
    body = json.dumps(doc, ensure_ascii=False).encode()
    (event,) = CHANNEL.parse(body, {}, rules) if rules else CHANNEL.parse(body)
    return event


def test_the_channel_is_pulled_so_a_webhook_call_is_refused():
    assert CHANNEL.push is False
    with pytest.raises(Unauthorized, match="pulled"):
        CHANNEL.authenticate(InboundRequest("taobao", {}, b"{}", "203.0.113.1"), ChannelSettings(secrets=["s"]),
                             datetime.now(UTC))


def test_a_finished_trade_fetched_for_the_first_time_implies_every_milestone_before_it():
    event = parse(trade("TRADE_FINISHED", consign_time=T0 + timedelta(hours=5), waybill=("顺丰速运", "SF1"),
                        end_time=T0 + timedelta(days=3)))
    assert event.kinds == (EventKind.CREATED, EventKind.PAID, EventKind.SHIP_REQUESTED, EventKind.COMPLETED)
    assert event.shipment is not None and (event.shipment.carrier, event.shipment.tracking_no) == ("顺丰速运", "SF1")


def test_the_snapshot_is_keyed_by_trade_and_modified_time_in_beijing_time():
    event = parse(trade(minutes=5))
    assert event.channel_order_id == str(TID) and event.event_id == f"{TID}@20261118090500"
    assert event.event_time == T0 + timedelta(minutes=5) and event.event_time.utcoffset() == timedelta(hours=8)
    assert parse(trade(minutes=5)).event_id == event.event_id  # a re-fetch is a duplicate
    assert parse(trade(minutes=6)).event_id != event.event_id


def test_tid_str_is_preferred_so_a_64_bit_trade_number_is_never_rounded():
    doc = trade()
    doc["tid"] = float(TID)  # 4.031118000000001e+18: what a float-parsing JSON reader makes of it
    assert parse(doc).channel_order_id == str(TID)
    del doc["tid_str"]
    with pytest.raises(Malformed, match="tid is not an integer"):
        parse(doc)


def test_money_in_yuan_strings_becomes_integer_fen_exactly():
    doc = trade()
    doc["payment"] = "219.50"
    doc["orders"]["order"][0]["price"] = "0.10"
    event = parse(doc)
    assert event.details is not None and event.details.total_amount == 21950
    assert event.details.lines[0].unit_price == 10
    assert event.payment is not None and event.payment.amount == 21950


def test_only_the_coarse_region_of_the_receiver_is_kept():
    event = parse(trade())
    assert event.details is not None
    assert (event.details.region.province, event.details.region.city) == ("浙江省", "杭州市")
    dumped = event.model_dump_json()
    assert "张测试" not in dumped and "13800000001" not in dumped and "文三路" not in dumped


def test_a_county_level_city_is_read_from_receiver_district():
    doc = trade()
    doc["receiver_city"], doc["receiver_district"] = "", "济源市"
    assert parse(doc).details.region.city == "济源市"


@pytest.mark.parametrize("status", sorted(STATUS_MAP))
def test_every_trade_status_produces_its_mapped_milestones_and_hold(status):
    kinds, hold = STATUS_MAP[status]
    event = parse(trade(status))
    assert event.kinds == kinds and event.hold == hold and event.gaps == ()
    assert event.channel_code == f"status={status}"
    assert (event.payment is not None) == (EventKind.PAID in kinds)


def test_paid_but_forbidden_to_ship_is_a_hold_and_shipping_statuses_are_ship_requests_only():
    assert parse(trade("PAID_FORBID_CONSIGN")).hold
    for status in ("SELLER_CONSIGNED_PART", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_FINISHED"):
        assert EventKind.OUTBOUND not in parse(trade(status)).kinds  # ST-4


@pytest.mark.parametrize("step", sorted(STEP_MAP))
def test_presale_step_status_decides_the_payment_milestones(step):
    event = parse(trade("WAIT_BUYER_PAY", step=step, step_paid_fee=Decimal("50.00")))
    assert [k for k in event.kinds if k in (EventKind.DEPOSIT_PAID, EventKind.PAID)] == list(STEP_MAP[step])
    assert (event.deposit is not None) == (step == "FRONT_PAID_FINAL_NOPAID")
    if event.deposit is not None:
        assert event.deposit.amount == 5000
    assert f"step_trade_status={step}" in event.channel_code


def test_a_presale_deposit_puts_the_order_on_hold_until_the_balance():
    order, _ = apply_event(None, parse(trade("WAIT_BUYER_PAY", step="FRONT_PAID_FINAL_NOPAID",
                                             step_paid_fee=Decimal("50.00"))))
    assert (order.status.value, order.payment_status.value, order.deposit_amount) == ("ON_HOLD", "DEPOSIT_PAID", 5000)


def test_cash_on_delivery_is_paid_only_once_signed_for():
    assert EventKind.PAID not in parse(trade("WAIT_BUYER_CONFIRM_GOODS", trade_type="cod")).kinds
    assert EventKind.PAID in parse(trade("TRADE_BUYER_SIGNED", trade_type="cod")).kinds


@pytest.mark.parametrize("refund", sorted(REFUND_MAP))
def test_every_refund_status_becomes_its_after_sale_case(refund):
    event = parse(trade("WAIT_SELLER_SEND_GOODS", refunds={0: refund}))
    meaning = REFUND_MAP[refund]
    if meaning is None:
        assert event.aftersales == ()
        return
    (case,) = event.aftersales
    assert (case.state, case.type, case.channel_state, case.amount) == (*meaning, refund, 25800)
    assert case.case_id.isdigit()


def test_a_full_refund_closes_the_trade_as_closed_with_the_money_back():
    events = [parse(trade("WAIT_SELLER_SEND_GOODS", minutes=1)),
              parse(trade("TRADE_CLOSED", minutes=9, refunds={0: "SUCCESS"}))]
    order = None
    for event in events:
        order, _ = apply_event(order, event)
    assert (order.status.value, order.payment_status.value, order.refunded_amount) == ("CLOSED", "REFUNDED", 25800)
    assert events[1].aftersales[0].state is AftersaleState.REFUNDED


@pytest.mark.parametrize("field, value, gap", [
    ("status", "TRADE_TELEPORTED", "status=TRADE_TELEPORTED"),
    ("step_trade_status", "FRONT_HALF_PAID", "step_trade_status=FRONT_HALF_PAID"),
])
def test_an_unknown_code_is_a_gap_and_says_nothing_about_payment(field, value, gap):
    doc = trade("WAIT_SELLER_SEND_GOODS")
    doc[field] = value
    event = parse(doc)
    assert gap in event.gaps
    assert EventKind.PAID not in event.kinds and event.payment is None and event.deposit is None


def test_an_unknown_refund_code_is_a_gap_and_no_case():
    event = parse(trade(refunds={0: "WAIT_SOMETHING_NEW"}))
    assert event.gaps == ("refund_status=WAIT_SOMETHING_NEW",) and event.aftersales == ()


def test_an_unknown_status_keeps_the_last_good_status():
    good, _ = apply_event(None, parse(trade("WAIT_SELLER_SEND_GOODS", minutes=1)))
    doc = trade("WAIT_SELLER_SEND_GOODS", minutes=9)
    doc["status"] = "TRADE_TELEPORTED"
    after, _ = apply_event(good, parse(doc))
    assert after.status == good.status and after.payment_status == good.payment_status


def _mutate(doc: dict, path: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    holder = doc
    for part in parents:
        holder = holder[int(part)] if part.isdigit() else holder[part]
    if value is KeyError:
        del holder[last]
    else:
        holder[last] = value
    return doc


@pytest.mark.parametrize("path, value, reason", [
    ("tid_str", KeyError, None), ("modified", KeyError, "missing modified"),
    ("modified", "2026/11/18 09:05", "modified must be yyyy-MM-dd HH:mm:ss"),
    ("payment", "12.345", "payment must be a non-negative amount with at most 2 decimals"),
    ("payment", "-1.00", "payment must be a non-negative"), ("payment", "abc", "payment is not an amount"),
    ("orders.order.0.num", 0, r"orders.order\[0\].num must be a positive integer"),
    ("orders.order", {"oid": 1}, "orders.order must be a list"),
    ("tid_str", "40311180000000099AB", "tid_str must be digits"),
])
def test_malformed_documents_are_rejected_with_the_reason(path, value, reason):
    doc = _mutate(trade(), path, value)
    if path == "tid_str":
        doc.pop("tid")
    with pytest.raises(Malformed, match=reason or "missing tid"):
        parse(doc)


@pytest.mark.parametrize("body", [b"\xff not json", b"[]", b'"trade"'])
def test_a_body_that_is_not_one_json_object_is_malformed(body):
    with pytest.raises(Malformed):
        CHANNEL.parse(body)


def test_an_unknown_field_is_reported_as_drift_and_a_drop_rule_removes_it():
    doc = trade()
    doc["tid_suffix"] = "-A"
    doc["orders"]["order"][0]["gift_wrap"] = True
    assert parse(doc).drift == ("orders.order[].gift_wrap", "tid_suffix")
    cleaned = parse(doc, FieldRules(drop=("tid_suffix", "orders.order[].gift_wrap")))
    assert cleaned.drift == () and cleaned.channel_order_id == str(TID)


def test_every_story_ends_where_it_says():
    for path in STORIES:
        story = json.loads(path.read_text(encoding="utf-8"))
        order, _ = fold([parse(s) for s in story["snapshots"]])
        assert summary(order) == story["expect"], path.name


# ST-2 over the sample stories: any arrival order, any duplicates -----------------------------


def fold(events):
    order, statuses = None, []
    for event in events:
        order, _ = apply_event(order, event)
        statuses.append(order.status)
    return order, statuses


def summary(order) -> dict:
    return {"channel": order.channel, "channel_order_id": order.channel_order_id, "status": order.status.value,
            "payment_status": order.payment_status.value, "fulfillment_status": order.fulfillment_status.value,
            "aftersale_status": order.aftersale_status.value}


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
