"""accept_webhook: a rejected request leaves nothing behind; an accepted one is queued before the reply."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from unit.mall_events import created

from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.channels.mall import sign
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.models.envelope import IntakeMessage

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SETTINGS = ChannelSettings(secrets=["secret-1"])


class Queue:
    def __init__(self):
        self.sent: list[IntakeMessage] = []

    def send(self, message):
        self.sent.append(message)


def signed(body: bytes, channel: str = "mall") -> InboundRequest:
    ts = str(int(NOW.timestamp()))
    return InboundRequest(channel, {"x-mall-timestamp": ts, "x-mall-signature": sign("secret-1", ts, body),
                                    "user-agent": "shop"}, body, "198.51.100.7")


def accept(request):
    queue = Queue()
    return accept_webhook(request, "req-9", lambda _: SETTINGS, queue, FixedClock(NOW)), queue


def test_an_accepted_webhook_is_queued_raw_with_its_signature_headers():
    body = json.dumps(created()).encode()
    result, queue = accept(signed(body))
    assert result.reply.status_code == 200 and result.accepted_events == 1
    (message,) = queue.sent
    assert message.body == body and message.channel == "mall" and message.received_at.startswith("2026-11-22T03:00")
    assert set(message.headers) == {"x-mall-timestamp", "x-mall-signature"}  # only what replay needs


def test_a_forged_webhook_gets_401_and_nothing_is_queued():
    request = signed(json.dumps(created()).encode())
    forged = InboundRequest("mall", request.headers, request.body.replace(b"25800", b"25900"), request.source_ip)
    result, queue = accept(forged)
    assert result.reply.status_code == 401 and queue.sent == []


def test_a_malformed_webhook_gets_400_and_nothing_is_queued():
    result, queue = accept(signed(b'{"event_id": "evt_12345678"}'))
    assert result.reply.status_code == 400 and queue.sent == []
    assert "event_type" in json.loads(result.reply.body)["message"]


def test_an_unknown_channel_gets_404():
    result, queue = accept(signed(b"{}", channel="nosuch"))
    assert result.reply.status_code == 404 and queue.sent == []


def test_a_too_large_body_gets_413_before_any_parsing():
    result, queue = accept(signed(b"{" + b" " * 70_000 + b"}"))
    assert result.reply.status_code == 413 and queue.sent == []


def test_a_platform_ping_is_acknowledged_and_nothing_is_queued():
    # WooCommerce pings a new webhook with an unsigned form body; it must get 200 and leave nothing
    ping = InboundRequest("woocommerce", {"content-type": "application/x-www-form-urlencoded"}, b"webhook_id=7",
                          "198.51.100.7")
    result, queue = accept(ping)
    assert result.reply.status_code == 200 and result.accepted_events == 0 and queue.sent == []


def test_pulled_channels_have_no_webhook():
    result, queue = accept(signed(b"{}", channel="taobao"))
    assert result.reply.status_code == 404 and queue.sent == []
