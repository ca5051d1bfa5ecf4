"""The `youzan` channel: Youzan Cloud's message push, signed, decoded and mapped onto the hub's facts."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.demo.traffic import load_channel_stories
from orderhub.channels.base import (
    NO_RULES,
    Channel,
    ChannelSettings,
    FieldRules,
    InboundRequest,
    Malformed,
    Unauthorized,
)
from orderhub.channels.youzan import (
    CHANNEL,
    KNOWN_FIELDS,
    OPAQUE_FIELDS,
    REFUND_TYPE,
    TOPICS,
    TRADE_STATUS,
    client_request,
    sign,
    url_decode,
)
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK, AftersaleState, EventKind
from orderhub.models.order import OrderEvent

CLIENT_ID = "youzan-test-client-id"
SECRET = "youzan-test-client-secret"
SETTINGS = ChannelSettings(secrets=[SECRET], app_key=CLIENT_ID)
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
TID = "E20261118093012067100023"


def full_order(status: str = "WAIT_BUYER_PAY", update_time: str = "2026-11-18 09:30:12", **pay: Any) -> dict:
    return {"full_order_info": {
        "order_info": {"tid": TID, "status": status, "created": "2026-11-18 09:30:12", "update_time": update_time,
                       "pay_type": 10},
        "orders": [{"oid": "2791512317217210475", "outer_sku_id": "TEA-LJ-250", "sku_id": 37155730,
                    "item_id": 574609897, "title": "明前龙井 250g", "num": 2, "price": "129.00", "payment": "258.00"}],
        "pay_info": {"payment": "258.00", "total_fee": "258.00", "post_fee": "0.00", "transaction": [], **pay},
        "address_info": {"receiver_name": "李雷", "receiver_tel": "13900001111", "delivery_province": "浙江省",
                         "delivery_city": "杭州市", "delivery_district": "西湖区",
                         "delivery_address": "文一西路 998 号 3 幢 501"},
        "buyer_info": {"buyer_phone": "13900001111", "yz_open_id": "fmYKJi5S780402721424506880"}}}


def body_of(type_: str, msg: dict | str, status: str | None = None, version: int = 1794965412,
            msg_id: str = "9814ebed-2452-4db7-9e4f-b65b2f489694", encode: bool = True, **extra: Any) -> dict:
    if isinstance(msg, dict) and encode:
        msg = quote_plus(json.dumps(msg, ensure_ascii=False, separators=(",", ":")), safe="")
    return {"client_id": CLIENT_ID, "id": TID, "kdt_id": 46012345, "kdt_name": "西湖茶舍", "mode": 1, "msg": msg,
            "msg_id": msg_id, "sendCount": 1, "sign": "4cc66e4d2efdb625b93273dccdfbb031", "status": status,
            "test": False, "type": type_, "version": version, **extra}


def raw(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def request(payload: bytes, secret: str = SECRET) -> InboundRequest:
    headers, body = client_request(payload, {}, secret, CLIENT_ID, NOW)
    return InboundRequest("youzan", headers, body, "203.0.113.8")


def parse_one(body: dict, rules: FieldRules | None = None) -> OrderEvent:
    (event,) = CHANNEL.parse(raw(body), rules=rules or FieldRules())
    return event


CREATE = body_of("trade_TradeCreate", full_order(), "WAIT_BUYER_PAY")


def refund_msg(fee: str = "68.00", kind: str = "REFUND_ONLY") -> dict:
    return {"tid": TID, "oids": "2791512317217210475", "refund_id": "201911191802001234", "refunded_fee": fee,
            "refund_type": kind, "refund_reason": "缺货", "update_time": "2026-11-19 18:02:00"}


# Authentication ----------------------------------------------------------------------------

def test_a_correctly_signed_push_authenticates_and_is_answered_as_youzan_expects():
    req = request(raw(CREATE))
    assert (req.headers["event-type"], req.headers["client-id"]) == ("trade_TradeCreate", CLIENT_ID)
    CHANNEL.authenticate(req, SETTINGS, NOW)
    reply = CHANNEL.accepted()
    assert (reply.status_code, json.loads(reply.body)) == (200, {"code": 0, "msg": "success"})


def test_event_sign_is_md5_of_client_id_body_and_secret():
    assert sign("c", "s", b"{}") == hashlib.md5(b"c{}s", usedforsecurity=False).hexdigest()


@pytest.mark.parametrize("position", [0, 9, 120, -2])
def test_flipping_one_bit_of_the_body_is_rejected(position):
    req = request(raw(CREATE))
    tampered = bytearray(req.body)
    tampered[position] ^= 0x01
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("youzan", req.headers, bytes(tampered), req.source_ip), SETTINGS, NOW)


def test_flipping_one_bit_of_the_signature_is_rejected():
    req = request(raw(CREATE))
    good = req.headers["event-sign"]
    flipped = chr(ord(good[0]) ^ 0x01) + good[1:]
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("youzan", {**req.headers, "event-sign": flipped}, req.body,
                                            req.source_ip), SETTINGS, NOW)


def test_a_push_signed_with_another_secret_is_rejected():
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(request(raw(CREATE), secret=SECRET + "x"), SETTINGS, NOW)


def test_during_a_rotation_either_secret_is_accepted():
    rotating = ChannelSettings(secrets=["youzan-new-secret", SECRET], app_key=CLIENT_ID)
    CHANNEL.authenticate(request(raw(CREATE)), rotating, NOW)
    CHANNEL.authenticate(request(raw(CREATE), secret="youzan-new-secret"), rotating, NOW)


def test_a_push_without_event_sign_or_for_another_client_is_rejected():
    req = request(raw(CREATE))
    unsigned = {k: v for k, v in req.headers.items() if k != "event-sign"}
    with pytest.raises(Unauthorized, match="missing Event-Sign"):
        CHANNEL.authenticate(InboundRequest("youzan", unsigned, req.body, req.source_ip), SETTINGS, NOW)
    with pytest.raises(Unauthorized, match="Client-Id"):
        CHANNEL.authenticate(InboundRequest("youzan", {**req.headers, "client-id": "someone-else"}, req.body,
                                            req.source_ip), SETTINGS, NOW)


def test_youzan_signs_no_time_so_a_replay_is_authentic_and_keeps_its_event_id():
    req = request(raw(CREATE))
    CHANNEL.authenticate(req, SETTINGS, datetime(2026, 12, 31, tzinfo=UTC))
    assert CHANNEL.parse(req.body)[0].event_id == CHANNEL.parse(req.body)[0].event_id


def test_a_refusal_never_contains_success_so_youzan_retries_it():
    reply = CHANNEL.rejected(Malformed("success_time: not a time"))
    assert reply.status_code == 400 and "success" not in reply.body
    assert json.loads(reply.body)["code"] != 0


# Decoding ----------------------------------------------------------------------------------

def test_a_test_push_gets_the_success_reply_and_no_event():
    body = raw({**CREATE, "test": True})
    CHANNEL.authenticate(request(body), SETTINGS, NOW)
    assert CHANNEL.parse(body) == []


def test_the_url_encoded_msg_is_decoded_with_plus_as_space_and_percent_2b_as_plus():
    event = parse_one(CREATE)
    assert event.event_time == datetime(2026, 11, 18, 1, 30, 12, tzinfo=UTC)  # Beijing time, "+" was a space
    order = full_order()
    order["full_order_info"]["orders"][0]["title"] = "龙井+碧螺春"
    details = parse_one(body_of("trade_TradeCreate", order, "WAIT_BUYER_PAY")).details
    assert details is not None and details.lines[0].name == "龙井+碧螺春"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_url_decoding_undoes_form_encoding_of_any_text(text):
    assert url_decode(quote_plus(text, safe="")) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="%+=abcDEF0123456789\r\n\u9f99 "))
def test_url_decoding_agrees_with_the_standard_library_or_refuses_non_utf8(text):
    try:
        decoded = url_decode(text)
    except UnicodeDecodeError:
        return  # the standard library would have put U+FFFD in: the hub refuses the message instead
    assert decoded == unquote_plus(text)


def test_the_full_order_becomes_details_in_fen_with_only_province_and_city():
    event = parse_one(CREATE)
    assert event.channel_order_id == TID and event.shop_id == "46012345"
    assert event.details is not None and event.details.total_amount == 25800
    assert [(line.sku, line.quantity, line.unit_price) for line in event.details.lines] == [("TEA-LJ-250", 2, 12900)]
    assert (event.details.region.province, event.details.region.city) == ("浙江省", "杭州市")
    dumped = event.model_dump_json()
    for personal in ("李雷", "13900001111", "文一西路", "西湖区", "fmYKJi5S"):
        assert personal not in dumped


@pytest.mark.parametrize("yuan, fen", [("12.50", 1250), ("0.1", 10), ("258", 25800), ("0.00", 0)])
def test_yuan_strings_become_fen_exactly(yuan, fen):
    paid = body_of("trade_TradeBuyerPay", full_order("WAIT_SELLER_SEND_GOODS", payment=yuan),
                   "WAIT_SELLER_SEND_GOODS")
    assert parse_one(paid).payment.amount == fen  # type: ignore[union-attr]


def test_a_json_number_amount_is_read_exactly_not_as_a_float():
    msg = refund_msg()
    msg["refunded_fee"] = 0.29  # a binary float would give 28 fen
    body = raw(body_of("trade_refund_BuyerCreated", msg))
    assert b"0.29" in body
    (event,) = CHANNEL.parse(body)
    assert event.aftersales[0].amount == 29


@pytest.mark.parametrize("status", sorted(TRADE_STATUS))
def test_every_trade_status_gives_its_milestones_and_hold(status):
    event = parse_one(body_of("trade_TradeMemoModified", full_order(status), status))
    kinds, hold = TRADE_STATUS[status]
    assert set(event.kinds) == set(kinds) and event.hold == hold and event.gaps == ()


def test_wait_confirm_holds_a_paid_group_buy_and_wait_seller_send_goods_releases_it():
    assert parse_one(body_of("trade_TradePaid", full_order("WAIT_CONFIRM"), "WAIT_CONFIRM")).hold \
        == "awaiting group or acceptance"
    assert parse_one(body_of("trade_TradeBuyerPay", full_order("WAIT_SELLER_SEND_GOODS"))).hold == ""


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_every_topic_gives_its_milestones_and_refund_state(topic):
    meaning = TOPICS[topic]
    msg: dict[str, Any] = refund_msg() if meaning.case else {"tid": TID, "update_time": "2026-11-19 10:00:00"}
    if meaning.region:
        msg["address"] = {"delivery_province": "江苏省", "delivery_city": "苏州市", "delivery_address": "平江路 12 号"}
    event = parse_one(body_of(topic, msg, encode=not topic.startswith("youzan_trade_Refund")))
    assert event.gaps == () and set(meaning.kinds) <= set(event.kinds)
    if meaning.case:
        (case,) = event.aftersales
        assert (case.state, case.case_id, case.amount) == (meaning.case, "201911191802001234", 6800)
    if meaning.region:
        assert event.region is not None and (event.region.province, event.region.city) == ("江苏省", "苏州市")
        assert "平江路" not in event.model_dump_json()


def test_a_full_order_dates_each_milestone_by_its_own_time_not_the_messages():
    # Given only the "waiting to ship" message arrives, sent when the buyer paid
    order = full_order("WAIT_SELLER_SEND_GOODS", "2026-11-18 09:31:05")
    order["full_order_info"]["order_info"]["pay_time"] = "2026-11-18 09:31:05"
    state, _ = apply_event(None, parse_one(body_of("trade_TradeBuyerPay", order, "WAIT_SELLER_SEND_GOODS")))
    # Then the order was created when it was created, and paid when it was paid
    assert state.milestones.created_at == "2026-11-18T01:30:12.000+00:00"
    assert state.milestones.paid_at == "2026-11-18T01:31:05.000+00:00"


def test_a_shipped_message_is_a_ship_request_never_an_outbound():
    event = parse_one(body_of("trade_TradeSellerShip", {"tid": TID, "update_time": "2026-11-18 16:20:00"},
                              "WAIT_BUYER_CONFIRM_GOODS"))
    assert EventKind.SHIP_REQUESTED in event.kinds and EventKind.OUTBOUND not in event.kinds


@pytest.mark.parametrize("kind", sorted(REFUND_TYPE))
def test_every_refund_type_is_mapped(kind):
    (case,) = parse_one(body_of("trade_refund_BuyerCreated", refund_msg(kind=kind))).aftersales
    assert case.type is REFUND_TYPE[kind] and case.state is AftersaleState.REQUESTED


@pytest.mark.parametrize("body, gap", [
    (body_of("trade_TradeMemoModified", full_order("WAIT_GROUP_X"), "WAIT_GROUP_X"), "status=WAIT_GROUP_X"),
    (body_of("trade_TradeSomethingNew", {"tid": TID, "update_time": "2026-11-19 10:00:00"}),
     "type=trade_TradeSomethingNew"),
    (body_of("trade_refund_BuyerCreated", refund_msg(kind="SWAP")), "refund_type=SWAP"),
])
def test_unknown_codes_become_gaps_never_guesses(body, gap):
    assert gap in parse_one(body).gaps


def test_an_unknown_status_leaves_the_order_at_its_last_good_status():
    order = None
    for body in (CREATE, body_of("trade_TradeBuyerPay", full_order("WAIT_SELLER_SEND_GOODS", "2026-11-18 09:31:05"),
                                 "WAIT_SELLER_SEND_GOODS"),
                 body_of("trade_TradeMemoModified", full_order("NEW_STATUS", "2026-11-18 12:00:00"), "NEW_STATUS")):
        order, _ = apply_event(order, parse_one(body))
    assert order is not None and order.status.value == "PAID"


def test_among_same_type_messages_at_the_same_time_the_higher_version_wins():
    # Given two trade_TradePaid pushes stamped the same second, the later version saying the group formed
    held = parse_one(body_of("trade_TradePaid", full_order("WAIT_CONFIRM", "2026-11-19 11:03:00"), version=1795000000,
                             msg_id="ffffffff-0000-0000-0000-000000000000"))
    released = parse_one(body_of("trade_TradePaid", full_order("WAIT_SELLER_SEND_GOODS", "2026-11-19 11:03:00"),
                                 version=1795000001, msg_id="00000000-0000-0000-0000-000000000000"))
    # Then whatever order they arrive in, the higher version's snapshot stands
    for first, second in ((held, released), (released, held)):
        order, _ = apply_event(apply_event(None, first)[0], second)
        assert (order.hold_reason, order.status.value) == ("", "PAID")


@pytest.mark.parametrize("body, fragment", [
    (b"not json", "not JSON"),
    (b"[]", "JSON object"),
    (raw({**CREATE, "msg": "%7Bnot-json"}), "msg: not URL-encoded JSON"),
    (raw({**CREATE, "msg": None}), "msg: required"),
    (raw({**CREATE, "type": None}), "type: required"),
    (raw(body_of("trade_TradeSellerShip", {"update_time": "2026-11-18 16:20:00"}, id=None)), "tid"),
    (raw(body_of("trade_TradeBuyerPay", full_order("WAIT_SELLER_SEND_GOODS", payment="12.345"))), "at most 2 decimals"),
    (raw(body_of("trade_TradeBuyerPay", full_order("WAIT_SELLER_SEND_GOODS", payment="免费"))), "not an amount"),
    (raw(body_of("trade_TradeClose", {"tid": TID, "update_time": "yesterday"})), "update_time"),
    (raw(body_of("trade_refund_BuyerCreated", {"tid": TID, "update_time": "2026-11-19 18:02:00"})), "refund_id"),
    (raw(body_of("trade_TradeClose", {"tid": TID}, version=-1)), "version"),
])
def test_malformed_pushes_are_rejected_with_what_is_wrong(body, fragment):
    with pytest.raises(Malformed, match=fragment):
        CHANNEL.parse(body)


def test_an_unknown_field_is_reported_as_drift_and_a_drop_rule_removes_it():
    order = full_order()
    order["full_order_info"]["order_info"]["promise_info"] = {"days": 3}
    body = body_of("trade_TradeCreate", order, "WAIT_BUYER_PAY", head_kdt_id=46012345)
    assert parse_one(body).drift == ("msg.full_order_info.order_info.promise_info",)
    rules = FieldRules(drop=("msg.full_order_info.order_info.promise_info",))
    assert parse_one(body, rules=rules).drift == ()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(KNOWN_FIELDS)), st.sampled_from(["new_field", "x", "[]"]), st.booleans())
def test_drift_is_what_the_channel_contract_computes(known_path, new_key, under_list):
    # Given a full order with a new field added under some known path
    payload: dict[str, Any] = {**CREATE, "msg": full_order()}
    payload["msg"]["full_order_info"]["orders"].append({"oid": "1", "made_up": {"deep": 1}})
    node: Any = payload
    for part in known_path.replace("[]", ".[]").split("."):
        node = node.setdefault(part, {}) if part != "[]" else node
        if isinstance(node, list):
            node = node[0] if node and isinstance(node[0], dict) else None
        if not isinstance(node, dict):
            return
    node[new_key] = {"nested": [1]} if under_list else 1
    # Then the walk gives what Channel.prepare gives with the opaque subtrees ignored
    reference = Channel()
    reference.known_fields = KNOWN_FIELDS
    expected = reference.prepare(payload, FieldRules(ignore=OPAQUE_FIELDS))[1]
    assert CHANNEL.prepare(payload, NO_RULES)[1] == expected


# Stories -----------------------------------------------------------------------------------

STORIES = load_channel_stories("youzan")


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
def test_every_story_is_signed_as_youzan_signs_and_ends_where_it_says(story):
    settings_ = ChannelSettings(secrets=["youzan-dev-client-secret-9ad1"], app_key="youzan-dev-client-id")
    for r in story.requests:
        headers, body = client_request(r.payload, r.headers, "youzan-dev-client-secret-9ad1", "youzan-dev-client-id",
                                       NOW)
        CHANNEL.authenticate(InboundRequest("youzan", headers, body, "203.0.113.8"), settings_, NOW)
    order, _ = fold(story_events(story))
    assert order.channel_order_id == story.expect["channel_order_id"]
    for field in ("status", "payment_status", "fulfillment_status", "aftersale_status"):
        assert getattr(order, field).value == story.expect[field], field
    assert all(not e.drift and not e.gaps for e in story_events(story))


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


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["%3D", "%3d", "%%", "%2", "%G1", "%", "+", "a", "%E9%BE%99", "%41", "%7B%22", "%E9",
                                 "=", "\r", "x"]), max_size=12))
def test_url_decoding_of_escape_sequences_agrees_with_the_standard_library(tokens):
    text = "".join(tokens)
    try:
        decoded = url_decode(text)
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            unquote_plus(text, encoding="utf-8", errors="strict")
        return
    assert decoded == unquote_plus(text)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                           lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
                               st.sampled_from(["tid", "x", "orders", "a.b"]), inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(KNOWN_FIELDS)), JSON_VALUES), max_size=4))
def test_drift_of_any_value_at_known_paths_is_what_the_channel_contract_computes(replacements):
    # Given a full order whose values at some known paths are replaced by any JSON (objects under leaves too)
    payload: dict[str, Any] = {**CREATE, "msg": full_order()}
    for path, value in replacements:
        node: Any = payload
        parts = path.replace("[]", ".[]").split(".")
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[0] if node and isinstance(node[0], dict) else None
            if not isinstance(node, dict) or part == "[]":
                continue
            node = node.setdefault(part, {})
        if isinstance(node, dict) and parts[-1] != "[]":
            node[parts[-1]] = value
    # Then the walk gives what Channel.prepare gives with the opaque subtrees ignored
    reference = Channel()
    reference.known_fields = KNOWN_FIELDS
    assert CHANNEL.prepare(payload, NO_RULES)[1] == reference.prepare(payload, FieldRules(ignore=OPAQUE_FIELDS))[1]


def test_an_object_where_a_list_was_is_drift_even_with_a_key_spelt_like_the_element_marker():
    payload: dict[str, Any] = {**CREATE, "msg": full_order()}
    payload["msg"]["full_order_info"]["orders"] = {"[]": [{"oid": "1"}]}
    reference = Channel()
    reference.known_fields = KNOWN_FIELDS
    expected = reference.prepare(payload, FieldRules(ignore=OPAQUE_FIELDS))[1]
    assert expected == ("msg.full_order_info.orders.[]",)
    assert CHANNEL.prepare(payload, NO_RULES)[1] == expected
