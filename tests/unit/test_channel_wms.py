"""The `wms` channel: the warehouse's package scans, the only report of the physical outbound (ST-4)."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.demo.traffic import load_channel_stories
from orderhub.channels import get_channel
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, TooLarge, Unauthorized
from orderhub.channels.wms import CHANNEL, EVENT_TYPES, client_request
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event, derive, hub_order_id, refused_kinds
from orderhub.lifecycle.statuses import STATUS_RANK, EventKind
from orderhub.models.order import Order, OrderEvent

SECRET = "wms-test-secret"
SETTINGS = ChannelSettings(secrets=[SECRET], timestamp_tolerance_s=300)
NOW = datetime(2026, 11, 19, 2, 10, tzinfo=UTC)
ORDER = {"channel": "mall", "channel_order_id": "M20261118101"}


def scan(event_type: str = "package.outbound", n: int = 1, at: str = "2026-11-19T10:05:12+08:00",
         lines: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    package: dict[str, Any] = {"package_id": f"PKG-HZ01-20261119-000{n}", "carrier": "SF",
                               "tracking_no": f"SF146802115931{n}", "scanned_at": at, "operator_id": "op-1042"}
    if lines is not None:
        package["lines"] = lines
    body: dict[str, Any] = {"event_id": f"wms-HZ01-20261119-00007{n}", "event_type": event_type,
                            "warehouse": "HZ-XIXI-01", "order": ORDER, "package": package}
    body.update(top)
    return body


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def request(body: bytes, ts: int | None = None, secret: str = SECRET) -> InboundRequest:
    at = NOW if ts is None else datetime.fromtimestamp(ts, UTC)
    headers, sent = client_request(body, {}, secret, "", at)
    return InboundRequest("wms", headers, sent, "10.20.0.7")


def parse_one(body: dict[str, Any], rules: FieldRules | None = None) -> OrderEvent:
    (event,) = CHANNEL.parse(raw(body), rules=rules or FieldRules())
    return event


def mall_order(**milestones: str) -> Order:
    """A paid mall order of 2 teas and 1 cup, as the shop's events left it."""
    return Order(order_id=hub_order_id("mall", "M20261118101"), channel="mall", channel_order_id="M20261118101",
                 currency="CNY", total_amount=34600,
                 lines=({"sku": "TEA-LJ-250", "quantity": 2, "unit_price": 12900},
                        {"sku": "CUP-CELADON-2", "quantity": 1, "unit_price": 8800}),
                 milestones={"created_at": "2026-11-18T12:15:00.000+00:00", "paid_at": "2026-11-18T12:16:30.000+00:00",
                             **milestones})


# Authentication ----------------------------------------------------------------------------

def test_a_correctly_signed_request_authenticates_and_gets_the_mall_style_reply():
    CHANNEL.authenticate(request(raw(scan())), SETTINGS, NOW)
    reply = CHANNEL.accepted()
    assert (reply.status_code, json.loads(reply.body)) == (200, {"code": "SUCCESS"})


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body_as_for_mall():
    req = request(b"{}")
    ts = req.headers["x-wms-timestamp"]
    assert ts == str(int(NOW.timestamp()))
    assert req.headers["x-wms-signature"] == "sha256=" + hmac.new(SECRET.encode(), f"{ts}.{{}}".encode(),
                                                                  hashlib.sha256).hexdigest()


@pytest.mark.parametrize("position", [0, 10, 57, -2])
def test_flipping_one_bit_of_the_body_is_rejected(position):
    req = request(raw(scan()))
    tampered = bytearray(req.body)
    tampered[position] ^= 0x01
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("wms", req.headers, bytes(tampered), req.source_ip), SETTINGS, NOW)


def test_flipping_one_bit_of_the_signature_is_rejected():
    req = request(raw(scan()))
    good = req.headers["x-wms-signature"]
    flipped = good[:-1] + chr(ord(good[-1]) ^ 0x01)
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("wms", {**req.headers, "x-wms-signature": flipped}, req.body,
                                            req.source_ip), SETTINGS, NOW)


def test_a_request_signed_with_another_secret_is_rejected():
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(request(raw(scan()), secret="wms-test-secreu"), SETTINGS, NOW)


def test_during_rotation_either_secret_is_accepted():
    rotating = ChannelSettings(secrets=["wms-new-secret", SECRET])
    CHANNEL.authenticate(request(raw(scan())), rotating, NOW)
    CHANNEL.authenticate(request(raw(scan()), secret="wms-new-secret"), rotating, NOW)


# The documented past window; ahead of the hub clock only a clock skew (a future stamp is a longer replay window).
@pytest.mark.parametrize("skew", [-300, -299, 0, 59, 60])
def test_timestamps_within_tolerance_are_accepted(skew):
    CHANNEL.authenticate(request(raw(scan()), ts=int(NOW.timestamp()) + skew), SETTINGS, NOW)


@pytest.mark.parametrize("skew, word", [(-301, "behind"), (61, "ahead of"), (299, "ahead of"), (-86400, "behind")])
def test_stale_or_future_timestamps_are_rejected_with_the_reason(skew, word):
    with pytest.raises(Unauthorized, match=word):
        CHANNEL.authenticate(request(raw(scan()), ts=int(NOW.timestamp()) + skew), SETTINGS, NOW)


@pytest.mark.parametrize("missing, reason", [("x-wms-signature", "missing X-Wms-Signature"),
                                              ("x-wms-timestamp", "missing X-Wms-Timestamp")])
def test_unsigned_requests_are_rejected(missing, reason):
    req = request(raw(scan()))
    headers = {k: v for k, v in req.headers.items() if k != missing}
    with pytest.raises(Unauthorized, match=reason):
        CHANNEL.authenticate(InboundRequest("wms", headers, req.body, req.source_ip), SETTINGS, NOW)


@pytest.mark.parametrize("headers, reason", [
    ({"x-wms-timestamp": "2026-11-19", "x-wms-signature": "sha256=00"}, "Unix seconds"),
    ({"x-wms-timestamp": str(int(NOW.timestamp())), "x-wms-signature": "00"}, "sha256="),
])
def test_a_malformed_timestamp_or_signature_is_rejected(headers, reason):
    with pytest.raises(Unauthorized, match=reason):
        CHANNEL.authenticate(InboundRequest("wms", headers, b"{}", "10.20.0.7"), SETTINGS, NOW)


def test_bodies_over_64_kib_are_too_large():
    with pytest.raises(TooLarge):
        CHANNEL.check_size(InboundRequest("wms", {}, b"x" * (64 * 1024 + 1), "10.20.0.7"))


def test_a_refusal_says_why_in_the_mall_reply_shape():
    reply = CHANNEL.rejected(Malformed("package.scanned_at: required"))
    assert (reply.status_code, json.loads(reply.body)) == (400, {"code": "REJECTED",
                                                                 "message": "package.scanned_at: required"})


# Mapping -----------------------------------------------------------------------------------

def test_an_outbound_from_wms_is_the_outbound_milestone_with_its_package_and_waybill():
    event = parse_one(scan(lines=[{"sku": "TEA-LJ-250", "quantity": 2}]))
    assert event.kinds == (EventKind.OUTBOUND,) and event.gaps == () and event.drift == ()
    assert (event.channel, event.channel_order_id, event.source) == ("mall", "M20261118101", "wms")
    assert event.event_time.isoformat() == "2026-11-19T10:05:12+08:00"
    assert event.outbound is not None
    assert (event.outbound.package_id, event.outbound.warehouse, event.outbound.tracking_no) == (
        "PKG-HZ01-20261119-0001", "HZ-XIXI-01", "SF1468021159311")
    assert [(line.sku, line.quantity) for line in event.outbound.lines] == [("TEA-LJ-250", 2)]
    assert event.shipment is not None and (event.shipment.carrier, event.shipment.tracking_no) == (
        "SF", "SF1468021159311")
    assert refused_kinds(event) == ()


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_gives_its_milestones(event_type):
    event = parse_one(scan(event_type))
    assert event.kinds == EVENT_TYPES[event_type] and event.gaps == ()
    assert (event.outbound is not None) == (event_type == "package.outbound")


def test_the_order_can_be_named_by_its_hub_id():
    oid = hub_order_id("mall", "M20261118101")
    body = scan()
    del body["order"]
    body["order_id"] = oid
    event = parse_one(body)
    assert (event.order_id, event.channel, event.channel_order_id) == (oid, "", "")


def test_an_unknown_package_event_is_a_gap_and_claims_nothing():
    event = parse_one(scan("package.weighed"))
    assert event.gaps == ("event_type=package.weighed",) and event.kinds == () and event.outbound is None


@pytest.mark.parametrize("event_type", ["ship.requested", "order.shipped", "outbound", None])
def test_a_ship_request_or_any_non_package_event_is_refused_from_the_warehouse(event_type):
    with pytest.raises(Malformed, match="ship requests come from the sales channel"):
        CHANNEL.parse(raw(scan(event_type=event_type)))


def _drop_order(body: dict[str, Any]) -> None:
    del body["order"]


@pytest.mark.parametrize("mutate, fragment", [
    (lambda b: b.pop("event_id"), "event_id"),
    (lambda b: b.pop("warehouse"), "warehouse"),
    (_drop_order, "one of them"),
    (lambda b: b.update(order_id=hub_order_id("mall", "M1")), "one of them"),
    (lambda b: b.update(order={"channel": "wms", "channel_order_id": "M1"}), "not a sales channel"),
    (lambda b: b.update(order={"channel": "kuaidi100", "channel_order_id": "M1"}), "not a sales channel"),
    (lambda b: b.update(order={"channel": "ebay", "channel_order_id": "M1"}), "not a sales channel"),
    (lambda b: b.update(order={"channel": "mall", "channel_order_id": "M1; DROP"}), "channel_order_id"),
    (lambda b: (b.pop("order"), b.update(order_id="M20261118101")), "order_id"),
    (lambda b: b["package"].pop("tracking_no"), "needs package.carrier and package.tracking_no"),
    (lambda b: b["package"].pop("package_id"), "package_id"),
    (lambda b: b["package"].pop("scanned_at"), "scanned_at"),
    (lambda b: b["package"].update(scanned_at="2026-11-19T10:05:12"), "offset"),
    (lambda b: b["package"].update(operator_id="张三"), "operator_id"),
    (lambda b: b["package"].update(lines=[{"sku": "TEA-LJ-250", "quantity": 0}]), "quantity"),
    (lambda b: b["package"].update(lines=[{"sku": "TEA-LJ-250", "quantity": 1.5}]), "quantity"),
])
def test_malformed_scans_are_rejected_with_what_is_wrong(mutate, fragment):
    body = scan()
    mutate(body)
    with pytest.raises(Malformed, match=fragment):
        CHANNEL.parse(raw(body))


@pytest.mark.parametrize("body, fragment", [(b"\xff not json", "not JSON"), (b"[]", "JSON object")])
def test_a_body_that_is_not_a_json_object_is_malformed(body, fragment):
    with pytest.raises(Malformed, match=fragment):
        CHANNEL.parse(body)


def test_an_unknown_field_is_reported_as_drift_and_a_drop_rule_removes_it():
    body = scan()
    body["package"]["weight_g"] = 820
    body["dock"] = "D3"
    assert parse_one(body).drift == ("dock", "package.weight_g")
    assert parse_one(body, rules=FieldRules(drop=("dock", "package.weight_g"))).drift == ()


# What the warehouse does to an order ---------------------------------------------------------

def test_an_outbound_from_wms_ships_the_order():
    order, transition = apply_event(mall_order(), parse_one(scan()))
    assert (order.status.value, order.fulfillment_status.value) == ("SHIPPED", "SHIPPED")
    assert transition.changed and order.milestones.outbound_at == "2026-11-19T02:05:12.000+00:00"
    assert list(order.packages) == ["PKG-HZ01-20261119-0001"] and order.tracking_no == "SF1468021159311"


def test_packages_that_cover_part_of_the_lines_ship_the_order_partially_until_all_are_out():
    first = parse_one(scan(lines=[{"sku": "TEA-LJ-250", "quantity": 2}]))
    second = parse_one(scan(n=2, at="2026-11-19T16:40:03+08:00", lines=[{"sku": "CUP-CELADON-2", "quantity": 1}]))
    partly, _ = apply_event(mall_order(), first)
    assert (partly.status.value, partly.fulfillment_status.value) == ("PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED")
    fully, _ = apply_event(partly, second)
    assert (fully.status.value, fully.fulfillment_status.value) == ("SHIPPED", "SHIPPED")
    assert set(fully.packages) == {"PKG-HZ01-20261119-0001", "PKG-HZ01-20261119-0002"}


def test_picked_and_packed_scans_change_nothing_on_the_order():
    before = derive(mall_order(ship_requested_at="2026-11-19T01:00:00.000+00:00"))
    for event_type in ("package.picked", "package.packed"):
        after, transition = apply_event(before, parse_one(scan(event_type)))
        assert after == before and not transition.changed


@pytest.mark.parametrize("reporter", [{"channel": "mall"}, {"channel": "mall", "source": "kuaidi100"},
                                      {"channel": "mall", "source": "import"}])
def test_only_wms_may_report_the_outbound_an_outbound_from_anyone_else_ships_nothing(reporter):
    # ST-4 (RESERVED_KINDS): a sales channel, a carrier or a file claiming the physical outbound is refused
    claim = OrderEvent(channel_order_id="M20261118101", event_id="evt_claims_outbound_1", channel_code="order.outbound",
                       kinds=(EventKind.SHIP_REQUESTED, EventKind.OUTBOUND),
                       event_time=datetime(2026, 11, 19, 2, 5, tzinfo=UTC),
                       outbound={"package_id": "PKG-FAKE-1", "carrier": "SF", "tracking_no": "SF1"}, **reporter)
    assert refused_kinds(claim) == (EventKind.OUTBOUND,)
    order, _ = apply_event(mall_order(), claim)
    assert (order.status.value, order.fulfillment_status.value) == ("PAID", "SHIP_REQUESTED")
    assert order.milestones.outbound_at is None and order.packages == {}


def test_the_same_outbound_from_wms_does_ship_it():
    claim = OrderEvent(channel="mall", channel_order_id="M20261118101", source="wms", event_id="wms-evt-outbound-1",
                       channel_code="package.outbound", kinds=(EventKind.OUTBOUND,),
                       event_time=datetime(2026, 11, 19, 2, 5, tzinfo=UTC),
                       outbound={"package_id": "PKG-1", "carrier": "SF", "tracking_no": "SF1"})
    assert apply_event(mall_order(), claim)[0].status.value == "SHIPPED"


# Stories: the shop's, the warehouse's and the carrier's requests of one order's life --------

STORIES = load_channel_stories("wms")
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


def test_there_are_stories_for_partial_shipping_no_outbound_and_naming_by_hub_id():
    assert {s.name for s in STORIES} >= {"wms/two_packages_delivered", "wms/ship_requested_never_outbound",
                                         "wms/outbound_by_hub_id"}


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.name)
def test_every_story_is_signed_as_each_sender_signs_and_ends_where_it_says(story):
    for r in story.requests:
        headers, body = sent(r.channel, r.payload, r.headers)
        get_channel(r.channel).authenticate(InboundRequest(r.channel, headers, body, "10.20.0.7"),
                                            ChannelSettings(secrets=[STORY_SECRETS[r.channel]]), NOW)
    events = story_events(story)
    assert all(not e.drift and not e.gaps for e in events)
    order, _ = fold(events)
    assert (order.channel, order.channel_order_id) == (story.expect["channel"], story.expect["channel_order_id"])
    for field in ("status", "payment_status", "fulfillment_status", "aftersale_status", "logistics_status"):
        assert getattr(order, field).value == story.expect[field], field


def test_a_shop_saying_shipped_without_a_warehouse_outbound_leaves_the_order_paid():
    (story,) = [s for s in STORIES if s.name == "wms/ship_requested_never_outbound"]
    order, _ = fold(story_events(story))
    assert (order.status.value, order.fulfillment_status.value) == ("PAID", "SHIP_REQUESTED")
    assert order.packages == {} and order.milestones.outbound_at is None


def test_two_packages_ship_the_order_partially_then_fully():
    (story,) = [s for s in STORIES if s.name == "wms/two_packages_delivered"]
    shop_and_warehouse = [e for e in story_events(story) if e.source != "kuaidi100"]
    order, statuses = fold(sorted(shop_and_warehouse, key=lambda e: (e.event_time, e.event_id)))
    shipping = [s.value for s in statuses if "SHIPPED" in s.value]
    assert shipping[0] == "PARTIALLY_SHIPPED" and shipping[-1] == "SHIPPED"
    assert len(order.packages) == 2


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
