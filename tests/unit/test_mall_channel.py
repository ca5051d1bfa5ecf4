"""The mall webhook contract: authentication, validation, normalisation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from unit.mall_events import created, mall_event, paid

from orderhub.channels.base import ChannelSettings, InboundRequest, Malformed, TooLarge, Unauthorized
from orderhub.channels.mall import CHANNEL, sign
from orderhub.lifecycle.statuses import EventKind

SECRET = "mall-test-secret"
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SETTINGS = ChannelSettings(secrets=[SECRET], timestamp_tolerance_s=300)


def request(body: bytes, ts: int | None = None, secret: str = SECRET, ip: str = "203.0.113.9",
            signature: str | None = None) -> InboundRequest:
    stamp = str(int(NOW.timestamp()) if ts is None else ts)
    headers = {"x-mall-timestamp": stamp, "x-mall-signature": signature or sign(secret, stamp, body)}
    return InboundRequest("mall", headers, body, ip)


def body_of(event: dict) -> bytes:
    return json.dumps(event).encode()


def test_a_correctly_signed_request_is_authentic():
    CHANNEL.authenticate(request(body_of(created())), SETTINGS, NOW)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    # Given the contract's example inputs, the signature is recomputable with the standard library alone
    import hashlib
    import hmac

    expected = "sha256=" + hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", b"{}") == expected


@pytest.mark.parametrize("position", [0, 10, 57])
def test_flipping_one_bit_of_the_body_is_rejected(position):
    body = body_of(created())
    req = request(body)
    tampered = bytearray(body)
    tampered[position] ^= 0x01
    with pytest.raises(Unauthorized, match="signature does not match"):
        CHANNEL.authenticate(InboundRequest("mall", req.headers, bytes(tampered), req.source_ip), SETTINGS, NOW)


def test_flipping_one_bit_of_the_signature_is_rejected():
    body = body_of(created())
    good = request(body).headers["x-mall-signature"]
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(Unauthorized):
        CHANNEL.authenticate(request(body, signature=flipped), SETTINGS, NOW)


def test_a_request_signed_with_another_secret_is_rejected():
    with pytest.raises(Unauthorized):
        CHANNEL.authenticate(request(body_of(created()), secret="mall-test-secreu"), SETTINGS, NOW)


def test_during_rotation_either_secret_is_accepted():
    rotating = ChannelSettings(secrets=["new-secret", SECRET])
    CHANNEL.authenticate(request(body_of(created()), secret=SECRET), rotating, NOW)
    CHANNEL.authenticate(request(body_of(created()), secret="new-secret"), rotating, NOW)


# The documented past window; ahead of the hub clock only a clock skew (a future stamp is a longer replay window).
@pytest.mark.parametrize("skew", [-300, -299, 0, 59, 60])
def test_timestamps_within_tolerance_are_accepted(skew):
    CHANNEL.authenticate(request(body_of(created()), ts=int(NOW.timestamp()) + skew), SETTINGS, NOW)


@pytest.mark.parametrize("skew, word", [(-301, "behind"), (61, "ahead of"), (299, "ahead of"), (-86400, "behind")])
def test_stale_or_future_timestamps_are_rejected_with_the_reason(skew, word):
    with pytest.raises(Unauthorized, match=word):
        CHANNEL.authenticate(request(body_of(created()), ts=int(NOW.timestamp()) + skew), SETTINGS, NOW)


@pytest.mark.parametrize("missing, reason", [("x-mall-signature", "missing X-Mall-Signature"),
                                              ("x-mall-timestamp", "missing X-Mall-Timestamp")])
def test_unsigned_requests_are_rejected(missing, reason):
    req = request(body_of(created()))
    headers = {k: v for k, v in req.headers.items() if k != missing}
    with pytest.raises(Unauthorized, match=reason):
        CHANNEL.authenticate(InboundRequest("mall", headers, req.body, req.source_ip), SETTINGS, NOW)


def test_a_non_numeric_timestamp_is_rejected():
    headers = {"x-mall-timestamp": "2026-11-22", "x-mall-signature": "sha256=00"}
    with pytest.raises(Unauthorized, match="Unix seconds"):
        CHANNEL.authenticate(InboundRequest("mall", headers, b"{}", "198.51.100.1"), SETTINGS, NOW)


def test_source_ip_outside_the_allow_list_is_rejected():
    allowed = ChannelSettings(secrets=[SECRET], allowed_ips=["198.51.100.0/24"])
    CHANNEL.check_source_ip(request(b"{}", ip="198.51.100.20"), allowed)
    with pytest.raises(Unauthorized, match="source IP not allowed"):
        CHANNEL.check_source_ip(request(b"{}", ip="203.0.113.9"), allowed)


def test_an_empty_allow_list_allows_any_source():
    CHANNEL.check_source_ip(request(b"{}", ip="203.0.113.9"), SETTINGS)


def test_bodies_over_64_kib_are_too_large():
    with pytest.raises(TooLarge):
        CHANNEL.check_size(request(b"x" * (64 * 1024 + 1)))


def test_parse_normalises_a_created_event():
    (event,) = CHANNEL.parse(body_of(created()))
    assert event.kinds == (EventKind.CREATED,) and event.gaps == ()
    assert event.channel_order_id == "M1"
    assert event.details is not None and event.details.total_amount == 25800
    assert event.details.region.city == "杭州市"
    assert event.event_time.utcoffset().total_seconds() == 8 * 3600


def test_personal_data_is_not_carried_into_the_normalised_event():
    (event,) = CHANNEL.parse(body_of(created()))
    dumped = event.model_dump_json()
    assert "13800138000" not in dumped and "张三" not in dumped


@pytest.mark.parametrize("mutate, fragment", [
    (lambda e: e.pop("event_id"), "event_id"),
    (lambda e: e.update(event_time="2026-11-21T09:00:00"), "offset"),
    (lambda e: e["order"].pop("payment"), "order.paid needs order.payment"),
    (lambda e: e["order"]["payment"].update(amount=12.5), "amount"),
    (lambda e: e["order"]["payment"].update(amount=-1), "amount"),
    (lambda e: e.update(event_type="payment.done"), "event_type"),
    (lambda e: e["order"].update(order_no="M1; DROP"), "order_no"),
])
def test_malformed_events_are_rejected_with_what_is_wrong(mutate, fragment):
    event = paid()
    mutate(event)
    with pytest.raises(Malformed, match=fragment):
        CHANNEL.parse(body_of(event))


def test_non_json_is_malformed():
    with pytest.raises(Malformed):
        CHANNEL.parse(b"\xff\xfe not json")


def test_an_unknown_order_event_type_parses_as_a_mapping_gap():
    (event,) = CHANNEL.parse(body_of(mall_event(9, "order.invoiced", 5)))
    assert event.kinds == () and event.gaps == ("event_type=order.invoiced",) and event.channel_code == "order.invoiced"


def test_replies_are_what_the_contract_says():
    assert CHANNEL.accepted().status_code == 200
    assert json.loads(CHANNEL.accepted().body) == {"code": "SUCCESS"}
    reply = CHANNEL.rejected(Unauthorized("signature does not match"))
    assert reply.status_code == 401
    assert json.loads(reply.body) == {"code": "REJECTED", "message": "signature does not match"}
