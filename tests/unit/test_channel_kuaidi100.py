"""The `kuaidi100` channel: 快递100's tracking push, signed, decoded and mapped onto the parcel's state."""

from __future__ import annotations

import hashlib
import importlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.demo.traffic import load_channel_stories
from orderhub.channels import get_channel
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.kuaidi100 import CHANNEL, LOGISTICS_STATE, MONITORING_STATUS, client_request, scrub, sign
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK, EventKind, LogisticsStatus
from orderhub.models.order import Order, OrderEvent

SALT = "kuaidi100-test-salt"
SETTINGS = ChannelSettings(secrets=[SALT])
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
BEIJING = timezone(timedelta(hours=8))
WAYBILL = "SF1468021159310"


def scan(at: str, code: str, context: str = "【杭州萧山中转场】已发出") -> dict[str, Any]:
    return {"context": context, "time": at, "ftime": at, "status": "在途", "statusCode": code,
            "areaCode": "CN330109000000", "areaName": "浙江,杭州市,萧山区", "areaCenter": None, "areaPinYin": None,
            "location": ""}


def push(state: str = "1002", status: str = "polling", data: list[dict[str, Any]] | None = None,
         **top: Any) -> dict[str, Any]:
    if data is None:
        data = [scan("2026-11-19 14:02:11", state), scan("2026-11-19 10:48:00", "1", "已收取快件")]
    return {"status": status, "billstatus": "got", "message": "", "autoCheck": "0", "comOld": "", "comNew": "",
            "lastResult": {"message": "ok", "nu": WAYBILL, "ischeck": "0", "condition": "F00", "com": "shunfeng",
                           "status": "200", "state": state, "data": data}, **top}


def param_of(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def request(value: dict[str, Any], salt: str = SALT) -> InboundRequest:
    headers, body = client_request(param_of(value), {}, salt, "", NOW)
    return InboundRequest("kuaidi100", headers, body, "203.0.113.30")


def parse_one(value: dict[str, Any], rules: FieldRules | None = None) -> OrderEvent:
    (event,) = CHANNEL.parse(request(value).body, rules=rules or FieldRules())
    return event


def form_with(param: str, sign_value: str | None) -> bytes:
    fields = {"param": param} if sign_value is None else {"param": param, "sign": sign_value}
    return urlencode(fields).encode()


# Authentication ----------------------------------------------------------------------------

def test_a_correctly_signed_push_authenticates_and_gets_the_reply_kuaidi100_expects():
    req = request(push())
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    CHANNEL.authenticate(req, SETTINGS, NOW)
    reply = CHANNEL.accepted()
    assert reply.status_code == 200
    assert json.loads(reply.body) == {"result": True, "returnCode": "200", "message": "成功"}


def test_the_push_is_a_form_of_param_and_sign_the_upper_case_md5_of_param_and_salt():
    fields = parse_qs(request(push()).body.decode())
    param = fields["param"][0]
    assert json.loads(param) == push()
    assert fields["sign"] == [hashlib.md5((param + SALT).encode(), usedforsecurity=False).hexdigest().upper()]
    assert sign("{}", "s") == hashlib.md5(b"{}s", usedforsecurity=False).hexdigest().upper()


@pytest.mark.parametrize("position", [0, 3, 6, 40, 200, -40, -5, -1])
def test_flipping_one_bit_of_the_body_is_rejected(position):
    req = request(push())
    tampered = bytearray(req.body)
    tampered[position] ^= 0x01
    with pytest.raises(Unauthorized):
        CHANNEL.authenticate(InboundRequest("kuaidi100", req.headers, bytes(tampered), req.source_ip), SETTINGS, NOW)


def test_flipping_one_bit_of_the_sign_is_rejected():
    param = param_of(push()).decode()
    good = sign(param, SALT)
    flipped = chr(ord(good[0]) ^ 0x01) + good[1:]
    body = form_with(param, flipped)
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("kuaidi100", {}, body, "203.0.113.30"), SETTINGS, NOW)


def test_a_lower_case_sign_is_not_what_kuaidi100_sends_and_is_rejected():
    param = param_of(push()).decode()
    body = form_with(param, sign(param, SALT).lower())
    with pytest.raises(Unauthorized):
        CHANNEL.authenticate(InboundRequest("kuaidi100", {}, body, "203.0.113.30"), SETTINGS, NOW)


def test_a_push_signed_with_another_salt_is_rejected():
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(request(push(), salt=SALT[:-1] + "u"), SETTINGS, NOW)


def test_during_a_rotation_every_configured_salt_is_accepted():
    rotating = ChannelSettings(secrets=["kuaidi100-new-salt", SALT])
    CHANNEL.authenticate(request(push()), rotating, NOW)
    CHANNEL.authenticate(request(push(), salt="kuaidi100-new-salt"), rotating, NOW)


def test_an_unsigned_push_from_a_subscription_without_salt_is_rejected_with_what_to_do():
    body = form_with(param_of(push()).decode(), None)
    with pytest.raises(Unauthorized, match="parameters.salt"):
        CHANNEL.authenticate(InboundRequest("kuaidi100", {}, body, "203.0.113.30"), SETTINGS, NOW)


def test_an_empty_salt_signs_nothing_and_is_never_accepted():
    # kuaidi100 signs with an empty salt too: MD5(param), which anyone can compute
    with pytest.raises(Unauthorized, match="no kuaidi100 salt"):
        CHANNEL.authenticate(request(push(), salt=""), ChannelSettings(secrets=[""]), NOW)


def test_kuaidi100_signs_no_time_so_a_replay_authenticates_and_is_the_same_event():
    req = request(push())
    CHANNEL.authenticate(req, SETTINGS, NOW + timedelta(days=30))
    assert CHANNEL.parse(req.body)[0].event_id == CHANNEL.parse(req.body)[0].event_id


def test_a_refusal_is_kuaidi100s_failure_reply_so_it_pushes_again():
    reply = CHANNEL.rejected(Malformed("lastResult.nu: required"))
    assert reply.status_code == 400
    assert json.loads(reply.body) == {"result": False, "returnCode": "500", "message": "lastResult.nu: required"}


# Mapping -----------------------------------------------------------------------------------

def test_a_push_names_the_waybill_not_an_order_and_is_dated_by_its_newest_scan():
    event = parse_one(push())
    assert (event.channel, event.channel_order_id, event.order_id, event.source) == ("", "", "", "kuaidi100")
    assert event.logistics is not None
    assert (event.logistics.tracking_no, event.logistics.carrier) == (WAYBILL, "shunfeng")
    assert event.event_time == datetime(2026, 11, 19, 14, 2, 11, tzinfo=BEIJING)
    assert event.channel_code == "status=polling;state=1002"
    assert event.gaps == () and event.drift == ()


def test_the_newest_scan_is_found_by_time_whatever_the_order_of_data():
    data = [scan("2026-11-19 10:48:00", "1"), scan("2026-11-20 09:12:40", "5", "派件中")]
    event = parse_one(push("5", data=data))
    assert event.event_time == datetime(2026, 11, 20, 9, 12, 40, tzinfo=BEIJING)
    assert event.logistics is not None and event.logistics.description == "派件中"


@pytest.mark.parametrize("state", sorted(LOGISTICS_STATE))
def test_every_state_gives_its_parcel_state_and_milestones(state):
    event = parse_one(push(state))
    parcel_state, kinds = LOGISTICS_STATE[state]
    assert event.logistics is not None and event.logistics.state is parcel_state
    assert event.kinds == kinds and event.gaps == ()


def test_collected_and_moving_scans_mean_the_carrier_has_the_parcel_and_a_signature_means_delivered():
    assert parse_one(push("1")).kinds == (EventKind.PICKED_UP,)
    assert parse_one(push("1002")).kinds == (EventKind.PICKED_UP,)
    assert parse_one(push("304")).kinds == (EventKind.PICKED_UP, EventKind.DELIVERED)
    for problem in ("2", "4", "6", "14", "102"):
        assert parse_one(push(problem)).kinds == (), problem


@pytest.mark.parametrize("status", sorted(MONITORING_STATUS))
def test_every_monitoring_status_is_known(status):
    assert parse_one(push("1002", status)).gaps == ()


def test_a_re_push_of_the_same_state_is_a_duplicate_and_a_new_state_is_a_new_event():
    first = parse_one(push("1002"))
    assert parse_one(push("1002", "updateall")).event_id == first.event_id
    assert parse_one(push("1002", "shutdown")).event_id == first.event_id
    later = [scan("2026-11-20 09:12:40", "5"), *push()["lastResult"]["data"]]
    assert parse_one(push("5", data=later)).event_id != first.event_id


def test_an_abort_is_its_own_event_without_milestones_and_says_why():
    tracking = parse_one(push("0"))
    stopped = parse_one(push("0", "abort", message="60天无变化"))
    assert stopped.kinds == () and stopped.event_id != tracking.event_id
    assert stopped.channel_code == "status=abort;state=0;message=60天无变化"
    assert stopped.logistics is not None and stopped.logistics.state is LogisticsStatus.IN_TRANSIT


def test_an_abort_before_any_scan_is_acknowledged_and_applies_nothing():
    assert CHANNEL.parse(request(push("0", "abort", data=[], message="3天查询无记录")).body) == []


def test_an_unknown_state_is_a_gap_and_claims_nothing():
    event = parse_one(push("15"))
    assert event.gaps == ("state=15",) and event.kinds == ()
    assert event.logistics is not None and event.logistics.state is LogisticsStatus.NONE


def test_an_unknown_state_leaves_the_order_at_its_last_good_status():
    order = Order(order_id="oh_x", channel="mall", channel_order_id="M1", tracking_no=WAYBILL)
    for value in (push("1002"), push("15", data=[scan("2026-11-20 08:00:00", "15"), scan("2026-11-19 14:02:11", "0")])):
        order, _ = apply_event(order, parse_one(value))
    assert order.status.value == "SHIPPED" and order.milestones.delivered_at is None


def test_an_unknown_monitoring_status_is_a_gap_and_the_scans_still_count():
    event = parse_one(push("1002", "paused"))
    assert event.gaps == ("status=paused",) and event.kinds == (EventKind.PICKED_UP,)


def test_the_state_may_come_as_a_number():
    value = push("301")
    value["lastResult"]["state"] = 301
    assert parse_one(value).kinds == (EventKind.PICKED_UP, EventKind.DELIVERED)


def test_the_scan_text_is_kept_short_and_without_phone_numbers_or_names():
    context = ("【四川省成都市双流区公司】 派件中 派件人: 王东平 电话 18521170000 。 如有疑问，请联系：0755-86719032，"
               "签收人：李雷，圆通快递小哥每天已测体温，请放心收寄快递，祝您生活愉快，欢迎再次使用圆通速递")
    event = parse_one(push("5", data=[scan("2026-11-20 13:47:04", "5", context)]))
    assert event.logistics is not None
    description = event.logistics.description
    for personal in ("王东平", "18521170000", "86719032", "李雷"):
        assert personal not in description
    assert description.startswith("【四川省成都市双流区公司】 派件中 派件人: * 电话 *") and len(description) <= 80
    assert scrub("快件已到达【杭州中转部】") == "快件已到达【杭州中转部】"


@pytest.mark.parametrize("body, fragment", [
    (b"\xff\xfe=1", "UTF-8 form"),
    (b"param", "form"),
    (urlencode([("param", "{}"), ("param", "{}")]).encode(), "param is repeated"),
    (urlencode({"sign": "X"}).encode(), "param: required"),
    (urlencode({"param": "{not json"}).encode(), "param: not JSON"),
    (urlencode({"param": "[]"}).encode(), "JSON object"),
    (param_of({"status": "polling"}), "form"),
])
def test_malformed_bodies_are_rejected_with_what_is_wrong(body, fragment):
    with pytest.raises(Malformed, match=fragment):
        CHANNEL.parse(body)


def _without(path: str):
    def mutate(value: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        holder: Any = value
        for part in parents:
            holder = holder[part]
        del holder[leaf]
    return mutate


@pytest.mark.parametrize("mutate, fragment", [
    (_without("lastResult"), "lastResult: required"),
    (_without("lastResult.nu"), "lastResult.nu"),
    (_without("lastResult.state"), "lastResult.state: required"),
    (lambda v: v["lastResult"].update(nu="X" * 65), "lastResult.nu"),
    (lambda v: v["lastResult"].update(data="none"), "lastResult.data: must be a list"),
    (lambda v: v["lastResult"].update(data=[]), "no scan"),
    (lambda v: v["lastResult"].update(data=["scan"]), r"lastResult.data\[0\]"),
    (lambda v: v["lastResult"]["data"][0].update(ftime="19/11/2026 14:02"), r"data\[0\].ftime"),
    (lambda v: v["lastResult"].update(com={"code": "sf"}), "lastResult.com: must be a string"),
    (lambda v: v.update(status=["polling"]), "status: must be a string"),
])
def test_malformed_params_are_rejected_with_what_is_wrong(mutate, fragment):
    value = push()
    mutate(value)
    with pytest.raises(Malformed, match=fragment):
        CHANNEL.parse(request(value).body)


def test_an_unknown_field_is_reported_as_drift_and_a_drop_rule_removes_it():
    value = push()
    value["lastResult"]["data"][0]["courierPhone"] = "13800000000"
    value["lastResult"]["isDelivery"] = False
    assert parse_one(value).drift == ("lastResult.data[].courierPhone", "lastResult.isDelivery")
    rules = FieldRules(drop=("lastResult.data[].courierPhone", "lastResult.isDelivery"))
    assert parse_one(value, rules=rules).drift == ()


def test_route_info_and_international_results_are_known_fields():
    value = push()
    value["lastResult"]["routeInfo"] = {"from": {"number": "CN1", "name": "浙江,杭州市"}, "cur": None, "to": None}
    value["lastResult"]["isLoop"] = False
    value["destResult"] = {"nu": WAYBILL, "state": "0", "data": []}
    assert parse_one(value).drift == ()


def test_a_carrier_scan_ships_a_paid_order_but_a_waybill_waiting_for_collection_does_not():
    paid = Order(order_id="oh_x", channel="mall", channel_order_id="M1", tracking_no=WAYBILL,
                 milestones={"paid_at": "2026-11-19T01:00:00.000+00:00"})
    waiting, _ = apply_event(paid, parse_one(push("102", data=[scan("2026-11-19 09:00:00", "102")])))
    assert (waiting.status.value, waiting.logistics_status.value) == ("PAID", "ORDERED")
    collected, _ = apply_event(waiting, parse_one(push("1", data=[scan("2026-11-19 10:48:00", "1")])))
    assert (collected.status.value, collected.logistics_status.value) == ("SHIPPED", "COLLECTED")


# Stories: the shop's, the warehouse's and the carrier's requests of one order's life --------

STORIES = load_channel_stories("kuaidi100")
STORY_SECRETS = {"mall": "mall-story-secret", "wms": "wms-story-secret", "kuaidi100": "kuaidi100-story-salt"}


def sent(channel: str, payload: bytes, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    module = importlib.import_module(type(get_channel(channel)).__module__)
    return module.client_request(payload, headers, STORY_SECRETS[channel], "", NOW)


def story_events(story) -> list[OrderEvent]:
    events = []
    for r in story.requests:
        headers, body = sent(r.channel, r.payload, r.headers)
        events += get_channel(r.channel).parse(body, headers)
    return events


def _waybills(order: Order) -> set[str]:
    return {p.tracking_no for p in order.packages.values() if p.tracking_no} | ({order.tracking_no} - {""})


def _finds_its_order(event: OrderEvent, order: Order | None) -> bool:
    """As the mapper resolves: by channel order number, else by hub id, else by waybill (retried until known)."""
    if event.channel_order_id:
        return True
    if order is None:
        return False
    if event.order_id:
        return event.order_id == order.order_id
    return event.logistics is not None and event.logistics.tracking_no in _waybills(order)


def fold(events: list[OrderEvent]) -> tuple[Order, list]:
    order: Order | None = None
    statuses, waiting = [], []
    for event in events:
        waiting.append(event)
        progressed = True
        while progressed:
            progressed = False
            for parked in list(waiting):
                if _finds_its_order(parked, order):
                    order, _ = apply_event(order, parked)
                    statuses.append(order.status)
                    waiting.remove(parked)
                    progressed = True
    assert not waiting, f"never found their order: {[e.event_id for e in waiting]}"
    assert order is not None
    return order, statuses


def test_there_are_stories_for_delivered_returned_and_troubled_parcels():
    assert {s.name for s in STORIES} >= {"kuaidi100/collected_in_transit_delivered",
                                         "kuaidi100/returned_to_sender", "kuaidi100/exception_then_signed"}


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.name)
def test_every_story_is_signed_as_each_platform_signs_and_ends_where_it_says(story):
    for r in story.requests:
        headers, body = sent(r.channel, r.payload, r.headers)
        get_channel(r.channel).authenticate(InboundRequest(r.channel, headers, body, "203.0.113.30"),
                                            ChannelSettings(secrets=[STORY_SECRETS[r.channel]]), NOW)
    events = story_events(story)
    assert all(not e.drift and not e.gaps for e in events)
    order, _ = fold(events)
    assert (order.channel, order.channel_order_id) == (story.expect["channel"], story.expect["channel_order_id"])
    for field in ("status", "payment_status", "fulfillment_status", "aftersale_status", "logistics_status"):
        assert getattr(order, field).value == story.expect[field], field


def test_no_personal_data_of_the_stories_reaches_the_events():
    for story in STORIES:
        dumped = "".join(e.model_dump_json() for e in story_events(story))
        for personal in ("韩梅梅", "13700002222", "李雷", "13900001111", "林小雨", "王东平", "18521170000",
                         "周师傅", "13588880000", "黄师傅", "15900001111", "华阳街道"):
            assert personal not in dumped, (story.name, personal)


@st.composite
def arrivals(draw):
    story = draw(st.sampled_from(STORIES))
    life = story_events(story)
    repeats = draw(st.lists(st.sampled_from(life), max_size=len(life)))
    return life, draw(st.permutations(life + repeats))


@settings(max_examples=150, deadline=None)
@given(arrivals())
def test_any_arrival_order_with_duplicates_converges_and_never_moves_back(case):
    life, arrived = case
    expected, _ = fold(sorted(life, key=lambda e: (e.event_time, e.event_id)))
    actual, statuses = fold(arrived)
    bookkeeping = set(HUB_BOOKKEEPING_FIELDS)
    assert actual.model_dump(exclude=bookkeeping) == expected.model_dump(exclude=bookkeeping)
    assert all(STATUS_RANK[a] <= STATUS_RANK[b] for a, b in zip(statuses, statuses[1:], strict=False))
