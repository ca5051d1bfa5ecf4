"""Subscriber delivery: signing, idempotency key, outcome classes, backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest

from orderhub.dispatch.delivery import SubscriberEndpoint, attempt_delivery, backoff_delay, signature
from orderhub.outbound_http import HttpReply

BUS_EVENT = {"id": "eb-1", "detail-type": "OrderStatusChanged", "source": "orderhub.orders",
             "time": "2026-11-22T01:00:00Z", "detail": {"event_id": "abc123", "status": "PAID"}}
ENDPOINT = SubscriberEndpoint("wms", "http://127.0.0.1:9/hook", "s" * 20, backoff_seconds=(10, 60, 300))


class Recorder:
    def __init__(self, status: int | None = 200, error: Exception | None = None):
        self.status, self.error, self.requests = status, error, []

    def post(self, url, body, headers, timeouts):
        self.requests.append((url, body, headers, timeouts))
        if self.error:
            raise self.error
        return HttpReply(self.status)


def test_a_delivery_is_signed_and_carries_the_event_id_as_idempotency_key():
    transport = Recorder(200)
    result = attempt_delivery(BUS_EVENT, ENDPOINT, transport, now_epoch=1_763_772_000)
    assert result.outcome == "delivered"
    (_, body, headers, _), = transport.requests
    assert headers["Idempotency-Key"] == "abc123"
    expected = hmac.new(b"s" * 20, b"1763772000." + body, hashlib.sha256).hexdigest()
    assert headers["X-OrderHub-Signature"] == f"v1={expected}"
    assert json.loads(body)["data"]["status"] == "PAID"


def test_the_same_event_gets_the_same_key_on_every_attempt():
    transport = Recorder(503)
    for now in (1, 2, 3):
        attempt_delivery(BUS_EVENT, ENDPOINT, transport, now_epoch=now)
    assert {h["Idempotency-Key"] for _, _, h, _ in transport.requests} == {"abc123"}


@pytest.mark.parametrize("status, outcome", [(200, "delivered"), (204, "delivered"), (408, "retry"), (429, "retry"),
                                             (500, "retry"), (503, "retry"), (400, "rejected"), (401, "rejected"),
                                             (404, "rejected"), (422, "rejected"), (301, "rejected")])
def test_outcome_classes(status, outcome):
    assert attempt_delivery(BUS_EVENT, ENDPOINT, Recorder(status), 0).outcome == outcome


@pytest.mark.parametrize("error", [TimeoutError("read timed out"), ConnectionRefusedError(), OSError("reset")])
def test_no_response_is_retried(error):
    result = attempt_delivery(BUS_EVENT, ENDPOINT, Recorder(error=error), 0)
    assert result.outcome == "retry" and result.status is None


def test_backoff_follows_the_schedule_with_jitter_and_repeats_the_last_step():
    rng = random.Random(1)
    delays = [backoff_delay(ENDPOINT, attempt, rng) for attempt in (1, 2, 3, 4, 5)]
    for delay, base in zip(delays, (10, 60, 300, 300, 300), strict=True):
        assert 0.8 * base <= delay <= 1.2 * base


def test_signature_helper_matches_the_documented_formula():
    assert signature("k", "1", b"{}") == "v1=" + hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest()
