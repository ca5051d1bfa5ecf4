"""The `douyin` channel: Douyin Shop's message push, signed, decoded and mapped onto the hub's facts."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.demo.traffic import load_channel_stories
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.douyin import (
    AFTERSALE_STATUS,
    AFTERSALE_TYPE,
    CHANNEL,
    MESSAGES,
    ORDER_STATUS,
    client_request,
    sign,
)
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK, AftersaleState, AftersaleType, EventKind
from orderhub.models.order import OrderEvent

APP_KEY = "7123456789012345678"
SECRET = "douyin-test-app-secret"
SETTINGS = ChannelSettings(secrets=[SECRET], app_key=APP_KEY)
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
P_ID = 6921345678901234567  # > 2**53: a float would turn it into ...4568
T0 = 1794965412  # 2026-11-18 09:30:12 Beijing


def message(tag: str | int, msg_id: str = "m1", **data) -> dict:
    base = {"p_id": P_ID, "s_ids": [P_ID + 1], "shop_id": 68715432, "biz": 2, "order_type": 0}
    return {"tag": str(tag), "msg_id": msg_id, "data": json.dumps({**base, **data}, ensure_ascii=False)}


def push(*messages: dict) -> bytes:
    return json.dumps(list(messages), ensure_ascii=False, separators=(",", ":")).encode()


def request(body: bytes, secret: str = SECRET, headers: dict | None = None) -> InboundRequest:
    signed, _ = client_request(body, headers or {}, secret, APP_KEY, NOW)
    return InboundRequest("douyin", signed, body, "203.0.113.7")


def parse_one(*messages: dict, rules: FieldRules | None = None) -> OrderEvent:
    (event,) = CHANNEL.parse(push(*messages), rules=rules or FieldRules())
    return event


CREATED = message(100, "c1", order_status=1, create_time=T0)
PAID = message(101, "p1", order_status=2, pay_time=T0 + 90, pay_amount=25800, pay_type=1)


# Authentication ----------------------------------------------------------------------------

def test_a_correctly_signed_push_authenticates_and_is_answered_as_douyin_expects():
    CHANNEL.authenticate(request(push(CREATED)), SETTINGS, NOW)
    reply = CHANNEL.accepted()
    assert (reply.status_code, json.loads(reply.body)) == (200, {"code": 0, "msg": "success"})


def test_the_signature_is_md5_of_app_key_body_and_secret():
    assert sign("k", "s", b"[]") == hashlib.md5(b"k[]s", usedforsecurity=False).hexdigest()


def test_a_push_saying_sign_method_hmac_sha256_is_checked_with_hmac():
    body = push(CREATED)
    req = request(body, headers={"sign-method": "hmac-sha256"})
    assert req.headers["event-sign"] == hmac.new(SECRET.encode(), APP_KEY.encode() + body + SECRET.encode(),
                                                 hashlib.sha256).hexdigest()
    CHANNEL.authenticate(req, SETTINGS, NOW)
    # the same HMAC presented as an MD5 push does not match
    md5_claim = {k: v for k, v in req.headers.items() if k != "sign-method"}
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("douyin", md5_claim, body, req.source_ip), SETTINGS, NOW)


def test_an_upper_case_signature_is_the_same_signature():
    req = request(push(CREATED))
    headers = {**req.headers, "event-sign": req.headers["event-sign"].upper()}
    CHANNEL.authenticate(InboundRequest("douyin", headers, req.body, req.source_ip), SETTINGS, NOW)


@pytest.mark.parametrize("position", [0, 7, 40, -3])
def test_flipping_one_bit_of_the_body_is_rejected(position):
    req = request(push(CREATED))
    tampered = bytearray(req.body)
    tampered[position] ^= 0x01
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("douyin", req.headers, bytes(tampered), req.source_ip), SETTINGS, NOW)


def test_flipping_one_bit_of_the_signature_is_rejected():
    req = request(push(CREATED))
    good = req.headers["event-sign"]
    flipped = good[:-1] + chr(ord(good[-1]) ^ 0x01)
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("douyin", {**req.headers, "event-sign": flipped}, req.body,
                                            req.source_ip), SETTINGS, NOW)


def test_a_push_signed_with_another_secret_is_rejected():
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(request(push(CREATED), secret=SECRET[:-1] + "u"), SETTINGS, NOW)


def test_during_a_rotation_either_secret_is_accepted():
    rotating = ChannelSettings(secrets=["douyin-new-secret", SECRET], app_key=APP_KEY)
    CHANNEL.authenticate(request(push(CREATED), secret=SECRET), rotating, NOW)
    CHANNEL.authenticate(request(push(CREATED), secret="douyin-new-secret"), rotating, NOW)


@pytest.mark.parametrize("header, reason", [("event-sign", "missing event-sign"), ("app-id", "missing app-id")])
def test_unsigned_pushes_are_rejected(header, reason):
    req = request(push(CREATED))
    headers = {k: v for k, v in req.headers.items() if k != header}
    with pytest.raises(Unauthorized, match=reason):
        CHANNEL.authenticate(InboundRequest("douyin", headers, req.body, req.source_ip), SETTINGS, NOW)


def test_a_push_for_another_app_is_rejected_even_if_signed_with_its_key():
    body = push(CREATED)
    headers = {"app-id": "7000000000000000001", "event-sign": sign("7000000000000000001", SECRET, body)}
    with pytest.raises(Unauthorized, match="app-id"):
        CHANNEL.authenticate(InboundRequest("douyin", headers, body, "203.0.113.7"), SETTINGS, NOW)


def test_an_unknown_sign_method_is_rejected():
    req = request(push(CREATED))
    with pytest.raises(Unauthorized, match="unsupported sign-method"):
        CHANNEL.authenticate(InboundRequest("douyin", {**req.headers, "sign-method": "sha1"}, req.body,
                                            req.source_ip), SETTINGS, NOW)


def test_douyin_signs_no_time_so_a_replayed_push_is_authentic_and_dedupes_by_msg_id():
    # Given a push captured and sent again a day later
    req = request(push(PAID))
    CHANNEL.authenticate(req, SETTINGS, datetime(2026, 11, 21, 4, 0, tzinfo=UTC))
    # Then it parses to the same event id, which the order's log already holds: the replay changes nothing
    first, again = CHANNEL.parse(req.body), CHANNEL.parse(req.body)
    assert [e.event_id for e in first] == [e.event_id for e in again] == ["p1"]
    order, _ = apply_event(None, first[0])
    assert apply_event(order, again[0])[0] == order


def test_rejections_use_douyins_reply_shape_with_a_non_zero_code():
    reply = CHANNEL.rejected(Unauthorized("signature does not match"))
    assert reply.status_code == 401
    assert json.loads(reply.body) == {"code": 1, "msg": "signature does not match"}


# Decoding ----------------------------------------------------------------------------------

def test_the_verification_push_gets_the_success_reply_and_no_event():
    verify = push({"tag": "0", "msg_id": "0", "data": "{}"})
    CHANNEL.authenticate(request(verify), SETTINGS, NOW)
    assert CHANNEL.parse(verify) == []


def test_data_is_decoded_whether_sent_as_a_json_string_or_as_an_object():
    as_object = {**CREATED, "data": json.loads(CREATED["data"])}
    assert parse_one(CREATED) == parse_one(as_object)


def test_the_shop_order_id_stays_exact_beyond_two_to_the_53():
    event = parse_one(CREATED)
    assert event.channel_order_id == "6921345678901234567"
    assert parse_one(message(100, "c2", order_status=1, create_time=T0, p_id="6921345678901234567")) \
        .channel_order_id == "6921345678901234567"


def test_one_push_carrying_several_messages_gives_one_event_each():
    events = CHANNEL.parse(push(CREATED, PAID, message(113, "r1", update_time=T0 + 100, remark="送礼")))
    assert [e.event_id for e in events] == ["c1", "p1", "r1"]


def test_the_paid_message_carries_the_payment_in_fen_and_unix_seconds_are_utc():
    event = parse_one(PAID)
    assert event.payment is not None and (event.payment.amount, event.payment.method) == (25800, "wechat_pay")
    assert event.event_time == datetime(2026, 11, 18, 1, 31, 42, tzinfo=UTC)


def test_the_ship_message_is_a_ship_request_with_its_waybill_never_an_outbound():
    event = parse_one(message(102, "s1", order_status=3, update_time=T0 + 3600,
                              logistics_msg={"express_company_id": "shunfeng", "logistics_code": "SF1418297352061"}))
    assert EventKind.SHIP_REQUESTED in event.kinds and EventKind.OUTBOUND not in event.kinds
    assert event.shipment is not None and (event.shipment.carrier, event.shipment.tracking_no) == \
        ("shunfeng", "SF1418297352061")


def test_an_address_change_keeps_province_and_city_and_no_personal_data():
    addr = {"province": {"name": "江苏省", "id": "32"}, "city": {"name": "苏州市", "id": "320500"},
            "town": {"name": "姑苏区", "id": "320508"}, "street": {"name": "平江街道", "id": "1"},
            "detail": "平江路 12 号 3 室", "encrypt_detail": "#8kR2#Qm1X#"}
    receiver = {"addr": json.dumps(addr, ensure_ascii=False), "name": "王小明", "tel": "13800000021",
                "encrypt_name": "#F3k9#", "encrypt_tel": "$Zx8w$"}
    event = parse_one(message(105, "a1", order_status=2, update_time=T0 + 600, receiver_msg=receiver))
    assert event.region is not None and (event.region.province, event.region.city) == ("江苏省", "苏州市")
    dumped = event.model_dump_json()
    for personal in ("王小明", "13800000021", "平江路", "姑苏区", "#F3k9#", "$Zx8w$"):
        assert personal not in dumped


@pytest.mark.parametrize("status", sorted(ORDER_STATUS))
def test_every_order_status_gives_its_milestones_and_hold(status):
    # The memo message implies nothing itself, so the event says what the status says
    event = parse_one(message(113, "r1", order_status=status, update_time=T0))
    kinds, hold = ORDER_STATUS[status]
    assert set(event.kinds) == set(kinds) and event.hold == hold and event.gaps == ()


def test_order_status_105_is_held_for_risk_control_and_2_releases_it():
    assert parse_one(message(101, "p1", order_status=105, pay_time=T0, pay_amount=100)).hold == "risk control"
    assert parse_one(message(101, "p2", order_status=2, pay_time=T0, pay_amount=100)).hold == ""


RECEIVER = {"addr": json.dumps({"province": {"name": "浙江省"}, "city": {"name": "杭州市"}}, ensure_ascii=False)}


@pytest.mark.parametrize("tag", sorted(MESSAGES))
def test_every_documented_tag_gives_its_milestones_and_case_state(tag):
    # (a time is given to all, including those Douyin documents without one)
    meaning = MESSAGES[tag]
    data: dict[str, Any] = dict.fromkeys(meaning.times + ("update_time",), T0)
    data |= {"aftersale_id": 7012345678900011223, "aftersale_type": 0} if tag.startswith("2") else {}
    data |= {"receiver_msg": RECEIVER} if tag == "105" else {}
    event = parse_one(message(tag, f"t{tag}", **data))
    assert event.gaps == () and set(meaning.kinds) <= set(event.kinds)
    assert event.hold == meaning.hold
    if meaning.case is not None:
        assert event.aftersales[0].state is meaning.case


@pytest.mark.parametrize("tag", [t for t, m in MESSAGES.items() if not m.times])
def test_a_message_documented_without_a_time_is_acknowledged_but_changes_nothing(tag):
    event = parse_one(message(tag, f"t{tag}", order_status=105, aftersale_id=1, aftersale_status=6))
    assert event.gaps == (f"time: tag {tag} carries none",)
    order, _ = apply_event(None, parse_one(CREATED))
    assert apply_event(order, event)[0] == order


@pytest.mark.parametrize("status", sorted(AFTERSALE_STATUS))
def test_every_aftersale_status_gives_its_case_state(status):
    event = parse_one(message(200, "r1", aftersale_id=7012345678900011223, aftersale_status=status,
                              aftersale_type=0, refund_amount=5900, refund_post_amount=600, apply_time=T0))
    (case,) = event.aftersales
    assert case.state is AFTERSALE_STATUS[status] and case.case_id == "7012345678900011223"
    assert case.amount == 6500 and case.type is AftersaleType.RETURN_REFUND


@pytest.mark.parametrize("code", sorted(AFTERSALE_TYPE))
def test_every_aftersale_type_is_mapped_and_success_of_a_goods_case_is_an_exchange(code):
    (case,) = parse_one(message(206, "r1", aftersale_id=1, aftersale_status=12, aftersale_type=code,
                                success_time=T0)).aftersales
    assert case.type is AFTERSALE_TYPE[code]
    goods = AFTERSALE_TYPE[code] in (AftersaleType.EXCHANGE, AftersaleType.RESHIP)
    assert case.state is (AftersaleState.EXCHANGED if goods else AftersaleState.REFUNDED)


@pytest.mark.parametrize("data, gap", [
    ({"order_status": 999}, "order_status=999"),
    ({"aftersale_id": 1, "aftersale_status": 99, "aftersale_type": 0}, "aftersale_status=99"),
    ({"aftersale_id": 1, "aftersale_status": 6, "aftersale_type": 9}, "aftersale_type=9"),
])
def test_unknown_codes_become_gaps_never_guesses(data, gap):
    event = parse_one(message(200 if "aftersale_id" in data else 113, "u1", update_time=T0, **data))
    assert gap in event.gaps


def test_an_unknown_tag_for_an_order_is_a_gap_and_other_messages_are_ignored():
    event = parse_one(message(199, "u1", update_time=T0, order_status=2))
    assert "tag=199" in event.gaps
    assert CHANNEL.parse(push({"tag": "400", "msg_id": "g1", "data": json.dumps({"product_id": 1})})) == []


def test_an_unknown_status_leaves_the_order_at_its_last_good_status():
    order = None
    for raw in (CREATED, PAID, message(113, "x1", order_status=999, update_time=T0 + 500)):
        order, _ = apply_event(order, parse_one(raw))
    assert order is not None and order.status.value == "PAID"


@pytest.mark.parametrize("body, fragment", [
    (b"not json", "not JSON"),
    (b'{"tag":"100"}', "JSON array"),
    (b"[1]", "must be an object"),
    (push({"msg_id": "m", "data": "{}"}), "tag"),
    (push({"tag": "100", "data": "{}"}), "msg_id"),
    (push({"tag": "100", "msg_id": "m", "data": "{not json"}), "data: not a JSON document"),
    (push({"tag": "100", "msg_id": "m", "data": "[]"}), "data: must be a JSON object"),
    (push({"tag": "100", "msg_id": "m", "data": "{\"order_status\": 1}"}), "p_id: required"),
    (push(message(100, create_time=T0, p_id=6.921345678901235e18)), "p_id: must be an integer"),
    (push(message(100, create_time="yesterday")), "create_time: not a time"),
    (push(message(101, pay_time=T0, pay_amount="12.50")), "pay_amount: must be an integer"),
    (push(message(101, pay_time=T0, pay_amount=-5)), "payment.amount"),
])
def test_malformed_pushes_are_rejected_with_what_is_wrong(body, fragment):
    with pytest.raises(Malformed, match=fragment):
        CHANNEL.parse(body)


def test_an_unknown_field_is_reported_as_drift_and_a_drop_rule_removes_it():
    raw = message(100, "c1", order_status=1, create_time=T0, promise_tag={"type": 3})
    assert parse_one(raw).drift == ("data.promise_tag",)
    assert parse_one(raw, rules=FieldRules(drop=("data.promise_tag",))).drift == ()


# Stories -----------------------------------------------------------------------------------

STORIES = load_channel_stories("douyin")


def story_events(story) -> list[OrderEvent]:
    return [event for r in story.requests for event in CHANNEL.parse(r.payload)]


def fold(events):
    order, statuses = None, []
    for event in events:
        order, _ = apply_event(order, event)
        statuses.append(order.status)
    return order, statuses


def test_there_are_stories_for_every_kind_of_life():
    assert len(STORIES) >= 5


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.name)
def test_every_story_is_signed_as_douyin_signs_and_ends_where_it_says(story):
    for r in story.requests:
        headers, body = client_request(r.payload, r.headers, SECRET, APP_KEY, NOW)
        CHANNEL.authenticate(InboundRequest("douyin", headers, body, "203.0.113.7"), SETTINGS, NOW)
    order, _ = fold(story_events(story))
    assert order.channel_order_id == story.expect["channel_order_id"]
    for field in ("status", "payment_status", "fulfillment_status", "aftersale_status"):
        assert getattr(order, field).value == story.expect[field], field
    assert all(not e.drift for e in story_events(story))


@st.composite
def arrivals(draw):
    story = draw(st.sampled_from(STORIES))
    life = story_events(story)
    repeats = draw(st.lists(st.sampled_from(life), max_size=len(life) * 2))
    return life, draw(st.permutations(life + repeats))


@settings(max_examples=200, deadline=None)
@given(arrivals())
def test_any_arrival_order_with_duplicates_converges_and_never_moves_back(case):
    life, arrived = case
    expected, _ = fold(sorted(life, key=lambda e: (e.event_time, e.event_id)))
    actual, statuses = fold(arrived)
    assert actual.model_dump(exclude=HUB_BOOKKEEPING_FIELDS) == expected.model_dump(exclude=HUB_BOOKKEEPING_FIELDS)
    assert all(STATUS_RANK[a] <= STATUS_RANK[b] for a, b in zip(statuses, statuses[1:], strict=False))
