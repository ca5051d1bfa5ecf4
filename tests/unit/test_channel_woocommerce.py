"""The `woocommerce` channel: REST v3 order snapshots, signed over the raw body, mapped onto the hub's facts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.demo.traffic import ChannelStory, load_channel_stories
from orderhub.channels.base import ChannelSettings, FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.woocommerce import CHANNEL, MERCHANT_HOLD, STATUS, TOPICS, client_request, sign
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event
from orderhub.lifecycle.statuses import STATUS_RANK, AftersaleState, EventKind
from orderhub.models.order import OrderEvent

SECRET = "woocommerce-test-webhook-secret"
SETTINGS = ChannelSettings(secrets=[SECRET])
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
STORIES = load_channel_stories("woocommerce")
IP = "192.0.2.44"


def story(name: str) -> ChannelStory:
    return next(s for s in STORIES if s.name == f"woocommerce/{name}")


def sample(name: str = "paid_completed", index: int = 4) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and payload of one request of a stored story (a copy to mutate)."""
    request = story(name).requests[index]
    return dict(request.headers), json.loads(request.payload)


def signed(payload: dict[str, Any] | bytes, headers: dict[str, str], secret: str = SECRET) -> InboundRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent, body = client_request(body, headers, secret, "", NOW)
    return InboundRequest("woocommerce", sent, body, IP)


def parse(payload: dict[str, Any] | bytes, headers: dict[str, str],
          rules: FieldRules | None = None) -> list[OrderEvent]:
    request = signed(payload, headers)
    kept = {k: v for k, v in request.headers.items() if k in CHANNEL.kept_headers}
    return CHANNEL.parse(request.body, kept, rules or FieldRules())


def parse_one(payload: dict[str, Any], headers: dict[str, str], rules: FieldRules | None = None) -> OrderEvent:
    (event,) = parse(payload, headers, rules)
    return event


def order_sample(**changes: Any) -> tuple[dict[str, str], dict[str, Any]]:
    headers, order = sample()
    order.update(changes)
    return headers, order


def story_events(s: ChannelStory) -> list[OrderEvent]:
    events = []
    for request in s.requests:
        sent, body = client_request(request.payload, request.headers, SECRET, "", NOW)
        CHANNEL.authenticate(InboundRequest("woocommerce", sent, body, IP), SETTINGS, NOW)
        events += CHANNEL.parse(body, {k: v for k, v in sent.items() if k in CHANNEL.kept_headers})
    return events


def fold(events: list[OrderEvent]):
    order, statuses = None, []
    for event in events:
        order, _ = apply_event(order, event)
        statuses.append(order.status)
    return order, statuses


# Authentication ------------------------------------------------------------------------------


def test_a_correctly_signed_sample_authenticates_and_gets_a_200():
    CHANNEL.authenticate(signed(*reversed(sample())), SETTINGS, NOW)
    assert CHANNEL.accepted().status_code == 200


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body_with_the_webhook_secret():
    expected = base64.b64encode(hmac.new(b"k", b'{"id":1}', hashlib.sha256).digest()).decode()
    assert sign("k", b'{"id":1}') == expected


def test_the_body_is_sent_as_wordpress_encodes_it_and_signed_as_sent():
    headers, order = sample()
    request = signed(order, headers)
    assert b"\\/wp-json\\/wc\\/v3\\/orders" in request.body and request.body.isascii()
    assert request.headers["x-wc-webhook-signature"] == sign(SECRET, request.body)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("WooCommerce/") and "Hookshot" in request.headers["user-agent"]


@pytest.mark.parametrize("position", [0, 23, 700, -2])
def test_flipping_one_bit_of_the_body_is_rejected(position):
    request = signed(*reversed(sample()))
    tampered = bytearray(request.body)
    tampered[position] ^= 0x01
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("woocommerce", request.headers, bytes(tampered), IP), SETTINGS, NOW)


def test_flipping_one_bit_of_the_signature_is_rejected():
    request = signed(*reversed(sample()))
    raw = bytearray(base64.b64decode(request.headers["x-wc-webhook-signature"]))
    raw[9] ^= 0x01
    forged = {**request.headers, "x-wc-webhook-signature": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("woocommerce", forged, request.body, IP), SETTINGS, NOW)


def test_a_request_signed_with_another_secret_is_rejected():
    headers, order = sample()
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(signed(order, headers, secret=SECRET[:-1] + "u"), SETTINGS, NOW)


def test_an_unsigned_order_delivery_is_rejected():
    request = signed(*reversed(sample()))
    unsigned = {k: v for k, v in request.headers.items() if k != "x-wc-webhook-signature"}
    with pytest.raises(Unauthorized, match="missing X-WC-Webhook-Signature"):
        CHANNEL.authenticate(InboundRequest("woocommerce", unsigned, request.body, IP), SETTINGS, NOW)


def test_during_a_rotation_either_secret_is_accepted():
    headers, order = sample()
    rotating = ChannelSettings(secrets=["new-webhook-secret", SECRET])
    CHANNEL.authenticate(signed(order, headers), rotating, NOW)
    CHANNEL.authenticate(signed(order, headers, secret="new-webhook-secret"), rotating, NOW)


def test_a_secret_with_html_entities_signs_with_the_decoded_characters():
    # WooCommerce keys the HMAC with wp_specialchars_decode(secret, ENT_QUOTES)
    headers, order = sample()
    stored = "t0p&amp;s3cr&lt;t&#039;"
    CHANNEL.authenticate(signed(order, headers, secret="t0p&s3cr<t'"), ChannelSettings(secrets=[stored]), NOW)


def test_woocommerce_signs_no_timestamp_so_an_old_delivery_still_authenticates():
    CHANNEL.authenticate(signed(*reversed(sample())), SETTINGS, NOW + timedelta(days=30))


def test_the_creation_ping_gets_200_without_a_signature_and_produces_no_event():
    headers, body = client_request(b"webhook_id=14", {}, SECRET, "", NOW)
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert "x-wc-webhook-signature" not in headers
    CHANNEL.authenticate(InboundRequest("woocommerce", headers, body, IP), SETTINGS, NOW)
    assert CHANNEL.parse(body, {}) == [] and CHANNEL.accepted().status_code == 200


def test_a_ping_shaped_body_with_a_topic_is_not_a_ping():
    with pytest.raises(Unauthorized, match="missing X-WC-Webhook-Signature"):
        CHANNEL.authenticate(InboundRequest("woocommerce", {"x-wc-webhook-topic": "order.updated"},
                                            b"webhook_id=14", IP), SETTINGS, NOW)


# Mapping tables ------------------------------------------------------------------------------


@pytest.mark.parametrize("status, row", list(STATUS.items()))
def test_every_status_produces_its_milestones_and_hold(status, row):
    headers, order = order_sample(status=status, date_paid_gmt=None, date_paid=None)
    event = parse_one(order, headers)
    assert event.kinds == row.kinds and event.gaps == ()
    assert event.hold == row.hold
    assert (event.details is not None) == row.facts


@pytest.mark.parametrize("status, row", [(s, r) for s, r in STATUS.items() if r.facts])
def test_a_paid_order_is_paid_whatever_its_status_now(status, row):
    headers, order = order_sample(status=status)  # date_paid_gmt set
    event = parse_one(order, headers)
    assert EventKind.PAID in event.kinds and event.payment is not None and event.payment.amount == 4625
    assert event.hold == row.hold_if_paid


def test_on_hold_unpaid_is_awaiting_payment_and_on_hold_after_payment_is_a_hold():
    unpaid = parse_one(*reversed(order_sample(status="on-hold", date_paid_gmt=None)))
    order, _ = fold([unpaid])
    assert (order.status.value, order.hold_reason) == ("PENDING_PAYMENT", "")
    paid = parse_one(*reversed(order_sample(status="on-hold")))
    order, _ = fold([paid])
    assert (order.status.value, order.hold_reason) == ("ON_HOLD", MERCHANT_HOLD)


def test_completed_is_a_ship_request_not_a_shipment():
    order, _ = fold(story_events(story("paid_completed")))
    assert (order.status.value, order.fulfillment_status.value) == ("PAID", "SHIP_REQUESTED")


def test_an_unknown_status_is_a_gap_and_the_order_keeps_its_last_good_status():
    headers, order = order_sample(status="wc-shipped-partially", date_paid_gmt=None)
    event = parse_one(order, headers)
    assert event.gaps == ("status=wc-shipped-partially",) and event.kinds == ()
    processing = parse_one(*reversed(sample("paid_completed", 3)))
    after, _ = fold([processing, event])
    assert after.status.value == "PAID"


@pytest.mark.parametrize("topic, carries", list(TOPICS.items()))
def test_every_order_topic_is_handled(topic, carries):
    headers, order = sample()
    payload = {"id": 4821} if carries == "nothing" else order
    events = parse(payload, {**headers, "x-wc-webhook-topic": topic})
    assert len(events) == (0 if carries == "nothing" else 1)


def test_an_unknown_order_topic_is_a_gap_with_the_snapshot_still_read():
    headers, order = sample()
    event = parse_one(order, {**headers, "x-wc-webhook-topic": "order.exported"})
    assert event.gaps == ("topic=order.exported",) and EventKind.PAID in event.kinds


# Normalisation -------------------------------------------------------------------------------


def test_an_order_snapshot_is_normalised():
    headers, order = sample("partially_refunded", 3)
    event = parse_one(order, headers)
    assert event.channel_order_id == "4823" and event.shop_id == "https://kettleandleaf.example/"
    assert event.event_time == datetime(2026, 11, 21, 20, 14, 33, tzinfo=UTC)
    assert event.details is not None and (event.details.currency, event.details.total_amount) == ("USD", 4850)
    assert [(li.sku, li.quantity, li.unit_price) for li in event.details.lines] == [
        ("GRN-SENCHA-KAB", 2, 1450), ("ROAST-HOJI-200", 1, 1200)]
    assert (event.details.region.province, event.details.region.city) == ("TX", "Austin")
    assert event.payment is not None and event.payment.transaction_id == "pi_3QkS1aLk2xY9aB1c1Hq7pE2r"
    (case,) = event.aftersales
    assert (case.case_id, case.state, case.amount, case.reason) == (
        "4830", AftersaleState.REFUNDED, 1450, "Tin dented in transit")


def test_personal_data_is_not_carried_into_the_event():
    dumped = parse_one(*reversed(sample())).model_dump_json()
    for personal in ("Lindqvist", "Hannah", "555-0163", "Fremont", "98103", "hannah.lindqvist", "198.51.100.23"):
        assert personal not in dumped


def test_a_checkout_draft_carries_no_facts():
    event = parse_one(*reversed(sample("checkout_draft_then_paid", 0)))
    assert event.kinds == () and event.details is None and event.hold is None and event.aftersales == ()


def test_a_line_without_sku_is_keyed_by_its_product_and_a_fractional_unit_price_is_rounded():
    headers, order = sample()
    order["line_items"][0] |= {"sku": "", "quantity": 3, "total": "10.00", "price": 3.3333333333}
    event = parse_one(order, headers)
    assert event.details is not None and (event.details.lines[0].sku, event.details.lines[0].unit_price) == (
        "product-201", 333)


# Dedupe and ordering -------------------------------------------------------------------------


def test_a_redelivered_snapshot_is_the_same_event_whatever_its_delivery_id():
    headers, order = sample()
    first = parse_one(order, {**headers, "x-wc-webhook-delivery-id": "a" * 32})
    again = parse_one(order, {**headers, "x-wc-webhook-delivery-id": "b" * 32, "x-wc-webhook-id": "15"})
    assert first.event_id == again.event_id and first.event_id.startswith("4821:2026-11-19T15:02:44Z:completed:")


def test_two_different_snapshots_of_the_same_second_are_different_events():
    headers, order = sample()
    refunded = json.loads(json.dumps(order))
    refunded["refunds"] = [{"id": 4840, "reason": "", "total": "-5.00"}]
    assert parse_one(order, headers).event_id != parse_one(refunded, headers).event_id


def test_an_old_snapshot_arriving_late_never_overwrites_a_newer_one():
    headers, order = sample("stale_redelivery", 2)
    completed = parse_one(order, headers)
    on_hold = parse_one(order | {"status": "on-hold", "date_modified_gmt": "2026-11-20T05:00:00"}, headers)
    assert on_hold.hold == MERCHANT_HOLD
    order, _ = fold([completed, on_hold])
    assert order.hold_reason == ""


# Malformed bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("body, headers, fragment", [
    (b"\xff not json", {}, "body is not JSON"),
    (b"[1]", {}, "body must be a JSON object"),
    (None, {"x-wc-webhook-topic": ""}, "missing X-WC-Webhook-Topic"),
    (None, {"x-wc-webhook-topic": "product.updated"}, "not an order topic"),
])
def test_malformed_requests_are_rejected_with_the_reason(body, headers, fragment):
    base, order = sample()
    with pytest.raises(Malformed, match=fragment):
        parse(body if body is not None else order, {**base, **headers})


@pytest.mark.parametrize("changes, fragment", [
    ({"id": "#4821"}, "id: a numeric id"),
    ({"date_modified_gmt": None, "date_created_gmt": None}, "date_modified_gmt: a date is required"),
    ({"date_modified_gmt": "yesterday"}, "date_modified_gmt: not an ISO 8601 date"),
    ({"currency": "$"}, "currency"),
    ({"total": "46.2x"}, "total: not a decimal amount"),
    ({"total": "46.255"}, "total: more decimals than USD has"),
    ({"line_items": [{"quantity": "2"}]}, "line_items\\[\\].quantity"),
    ({"refunds": [{"id": 1, "total": None}]}, "refunds\\[\\].total"),
])
def test_malformed_orders_are_rejected_with_what_is_wrong(changes, fragment):
    headers, order = order_sample(**changes)
    with pytest.raises(Malformed, match=fragment):
        parse(order, headers)


def test_a_trash_notice_without_an_id_is_malformed():
    headers, _ = sample()
    with pytest.raises(Malformed, match="id: a numeric id"):
        parse({"id": None}, {**headers, "x-wc-webhook-topic": "order.deleted"})


# Schema drift --------------------------------------------------------------------------------


def test_an_unknown_field_is_drift_and_a_drop_rule_removes_it():
    headers, order = order_sample(fulfillment_status="shipped")
    order["line_items"][0]["bundled_by"] = 77
    order["meta_data"][0]["value"] = {"any": {"json": "an extension keeps"}}  # opaque: not drift
    assert parse_one(order, headers).drift == ("fulfillment_status", "line_items[].bundled_by")
    rules = FieldRules(drop=("fulfillment_status", "line_items[].bundled_by"))
    assert parse_one(order, headers, rules).drift == ()


def test_the_stored_samples_show_no_drift_and_no_gaps():
    for s in STORIES:
        for event in story_events(s):
            assert (event.drift, event.gaps) == ((), ()), (s.name, event.event_id)


# Stories and convergence ---------------------------------------------------------------------


@pytest.mark.parametrize("s", STORIES, ids=lambda s: s.name)
def test_every_story_ends_where_it_says(s):
    order, _ = fold(story_events(s))
    assert order is not None
    got = {"channel": order.channel, "channel_order_id": order.channel_order_id, "status": order.status.value,
           "payment_status": order.payment_status.value, "fulfillment_status": order.fulfillment_status.value,
           "aftersale_status": order.aftersale_status.value}
    assert got == s.expect


def test_there_are_stories_for_each_life_the_brief_names():
    assert {"paid_completed", "cancelled_unpaid", "partially_refunded", "fully_refunded", "on_hold_then_processing",
            "stale_redelivery"} <= {s.name.split("/")[1] for s in STORIES}


LIVES = [story_events(s) for s in STORIES]


@st.composite
def arrivals(draw):
    life = draw(st.sampled_from(LIVES))
    repeats = draw(st.lists(st.sampled_from(life), max_size=len(life) * 2))
    return life, draw(st.permutations(life + repeats))


@settings(max_examples=250, deadline=None)
@given(arrivals())
def test_any_arrival_order_with_duplicates_converges_and_never_moves_back(case):
    life, arrived = case
    expected, _ = fold(sorted(life, key=lambda e: (e.event_time, e.event_id)))
    actual, statuses = fold(arrived)
    assert actual.model_dump(exclude=HUB_BOOKKEEPING_FIELDS) == expected.model_dump(exclude=HUB_BOOKKEEPING_FIELDS)
    assert all(STATUS_RANK[a] <= STATUS_RANK[b] for a, b in zip(statuses, statuses[1:], strict=False))
