"""One delivery attempt of one domain event to one subscriber.

The request: POST, JSON body, `Idempotency-Key` = the domain event id (the same on every retry
and redrive), `X-OrderHub-Timestamp` and `X-OrderHub-Signature: v1=<hex HMAC-SHA256(secret,
timestamp + "." + body)>`. Outcome classes: 2xx delivered; 408, 429, 5xx, timeouts and
connection failures retried with backoff; any other 4xx is a permanent rejection (retrying
cannot help) and is parked in the DLQ at once with its reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import dataclass
from typing import Any

from orderhub.outbound_http import DeliveryResult, Timeouts, Transport, http_outcome

USER_AGENT = "orderhub-dispatcher/1"


@dataclass(frozen=True)
class SubscriberEndpoint:
    name: str
    url: str
    signing_secret: str
    backoff_seconds: tuple[int, ...] = (30, 120, 600, 1800)
    timeout_s: float = 10
    max_attempts: int = 5
    connect_timeout_s: float = 3
    kind: str = "webhook"  # webhook | wecom | dingtalk

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(connect_s=self.connect_timeout_s, read_s=self.timeout_s)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def delivery_body(bus_event: dict[str, Any]) -> tuple[str, bytes]:
    """(idempotency key, body) for an EventBridge event as the subscriber queue holds it."""
    detail = bus_event["detail"]
    body = {"id": detail["event_id"], "type": bus_event["detail-type"], "source": bus_event["source"],
            "time": bus_event["time"], "data": detail}
    return detail["event_id"], json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def attempt_delivery(bus_event: dict[str, Any], endpoint: SubscriberEndpoint, transport: Transport,
                     now_epoch: int) -> DeliveryResult:
    key, body = delivery_body(bus_event)
    timestamp = str(now_epoch)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": key,
        "X-OrderHub-Event-Type": bus_event["detail-type"],
        "X-OrderHub-Timestamp": timestamp,
        "X-OrderHub-Signature": signature(endpoint.signing_secret, timestamp, body),
    }
    try:
        reply = transport.post(endpoint.url, body, headers, endpoint.timeouts)
    except OSError as exc:  # refused, reset, DNS, timeout
        return DeliveryResult("retry", None, f"no response: {type(exc).__name__}")
    return http_outcome(reply.status)


def deliver(bus_event: dict[str, Any], endpoint: SubscriberEndpoint, transport: Transport,
            now_ms: int) -> DeliveryResult:
    """One attempt, in the subscriber's kind: a signed webhook, or a message to a chat robot.

    Robots keep no idempotency key: a retried message may show twice in the group, which is
    better than a lost one.
    """
    if endpoint.kind == "webhook":
        return attempt_delivery(bus_event, endpoint, transport, now_ms // 1000)
    from orderhub.alerts.robots import robot_outcome, robot_request
    from orderhub.dispatch.robot_messages import render_order_change
    from orderhub.settings import business_tz

    title, markdown = render_order_change(bus_event, business_tz())
    url, body, headers = robot_request(endpoint.kind, endpoint.url, endpoint.signing_secret, title, markdown, now_ms)
    try:
        reply = transport.post(url, body, headers, endpoint.timeouts)
    except OSError as exc:
        return DeliveryResult("retry", None, f"no response: {type(exc).__name__}")
    return robot_outcome(endpoint.kind, reply)


def backoff_delay(endpoint: SubscriberEndpoint, attempt: int, rng: random.Random | None = None) -> int:
    """Seconds before attempt `attempt + 1`: the schedule's step with +-20 % jitter (never 0)."""
    schedule = endpoint.backoff_seconds
    base = schedule[min(attempt - 1, len(schedule) - 1)]
    jitter = (rng or random).uniform(0.8, 1.2)
    return max(1, min(43_200, round(base * jitter)))  # SQS caps a visibility timeout at 12 h
