"""Every push channel through the real webhook_ingest on moto: signed as its platform signs, it gets
that platform's success reply and is queued; one bit off in body, signature or secret gets 401
and leaves nothing behind; where the channel signs a timestamp, a stale or future one gets 401."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from infra.demo.traffic import ChannelRequest, load_channel_stories, signed_request
from orderhub.channels import get_channel

PUSH_CHANNELS = ["mall", "douyin", "youzan", "shopify", "woocommerce", "kuaidi100", "wms"]
# Channels whose signature covers a timestamp checked against the hub clock (±300 s by default).
TIMESTAMPED = ["mall", "wms"]


def first_request(channel: str) -> ChannelRequest:
    """The channel's own first request in its stories (a warehouse story starts with the shop's order)."""
    return next(r for story in load_channel_stories(channel) for r in story.requests if r.channel == channel)


def flip_bit(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def send(hub, channel: str, headers: dict[str, str], body: bytes) -> dict:
    return hub.invoke("webhook_ingest", hub.webhook_event(body, headers, channel=channel))


@pytest.fixture
def hub_now(hub, monkeypatch) -> datetime:
    """The hub's clock held at one instant, so a timestamp's distance from it is exactly what a test signs."""
    import importlib

    from orderhub.clock import FixedClock

    now = datetime.now(UTC)
    monkeypatch.setattr(importlib.import_module("functions.webhook_ingest.handler"), "_clock", FixedClock(now))
    return now


def queued(hub) -> list[dict]:
    messages: list[dict] = []
    while batch := hub.receive("intake"):
        messages += batch
    return messages


def expected_reply(channel: str) -> str:
    return get_channel(channel).accepted().body


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
def test_a_correctly_signed_request_gets_the_platforms_reply_and_is_queued(hub, channel):
    headers, body = signed_request(hub.config, first_request(channel))
    reply = send(hub, channel, headers, body)
    assert 200 <= reply["statusCode"] < 300
    assert reply["body"] == expected_reply(channel)
    (message,) = queued(hub)  # one request, one message, whatever it carries
    stored = json.loads(message["Body"])
    assert stored["channel"] == channel
    # The raw request travels with the message, byte for byte (ING-4: kept before the ack).
    assert base64.b64decode(stored["body_b64"]) == body


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
@pytest.mark.parametrize("where", ["first byte", "middle byte", "last byte"])
def test_one_bit_flipped_in_the_body_gets_401_and_queues_nothing(hub, channel, where):
    headers, body = signed_request(hub.config, first_request(channel))
    at = {"first byte": 0, "middle byte": len(body) // 2, "last byte": len(body) - 1}[where]
    reply = send(hub, channel, headers, flip_bit(body, at))
    assert reply["statusCode"] == 401, reply
    assert queued(hub) == []


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
def test_one_bit_flipped_in_the_signature_gets_401_and_queues_nothing(hub, channel):
    request = first_request(channel)
    now = datetime.now(UTC)
    headers, body = signed_request(hub.config, request, now=now)
    other_headers, other_body = signed_request(hub.config, request, now=now, secret="another-secret-entirely")
    # The signature is what changes with the secret: a header, or (kuaidi100) a form field of the body.
    signature_headers = [k for k in headers if headers[k] != other_headers.get(k)]
    if signature_headers:
        for name in signature_headers:
            value = headers[name].encode()
            tampered = {**headers, name: flip_bit(value, len(value) - 2).decode()}
            assert send(hub, channel, tampered, body)["statusCode"] == 401, name
    else:
        assert body != other_body  # the signature lives in the body
        start = body.index(b"sign=") + len(b"sign=")
        assert send(hub, channel, headers, flip_bit(body, start + 1))["statusCode"] == 401
    assert queued(hub) == []


@pytest.mark.parametrize("channel", PUSH_CHANNELS)
def test_a_secret_one_character_off_gets_401_and_queues_nothing(hub, channel):
    secret = hub.config.channels[channel].secrets[0]
    off = secret[:-1] + ("x" if secret[-1] != "x" else "y")
    headers, body = signed_request(hub.config, first_request(channel), secret=off)
    assert send(hub, channel, headers, body)["statusCode"] == 401
    assert queued(hub) == []


@pytest.mark.parametrize("channel", TIMESTAMPED)
# Timestamps are whole seconds; the edges here keep 10 s clear of ±300 (the exact edges, ±299/±301 s,
# are unit-tested).
@pytest.mark.parametrize("skew", [timedelta(seconds=-310), timedelta(seconds=310), timedelta(hours=-1)])
def test_a_stale_or_future_timestamp_gets_401_and_queues_nothing(hub, hub_now, channel, skew):
    headers, body = signed_request(hub.config, first_request(channel), now=hub_now + skew)
    assert send(hub, channel, headers, body)["statusCode"] == 401
    assert queued(hub) == []


@pytest.mark.parametrize("channel", TIMESTAMPED)
def test_a_timestamp_inside_the_tolerance_is_accepted(hub, hub_now, channel):
    headers, body = signed_request(hub.config, first_request(channel), now=hub_now - timedelta(seconds=280))
    assert 200 <= send(hub, channel, headers, body)["statusCode"] < 300
