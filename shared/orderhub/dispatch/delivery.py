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
from typing import Any, Literal, Protocol

RETRYABLE_STATUS = frozenset({408, 425, 429})
USER_AGENT = "orderhub-dispatcher/1"


@dataclass(frozen=True)
class SubscriberEndpoint:
    name: str
    url: str
    signing_secret: str
    backoff_seconds: tuple[int, ...] = (30, 120, 600, 1800)
    timeout_s: float = 10
    max_attempts: int = 5


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["delivered", "retry", "rejected"]
    status: int | None
    reason: str


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        """The HTTP status; raises OSError (incl. timeouts) when no status was had."""


class UrllibTransport:
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        import urllib.error
        import urllib.request

        if not url.startswith(("https://", "http://")):
            raise OSError(f"unsupported endpoint scheme: {url.split(':', 1)[0]}")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310 - scheme checked
                reply.read(1024)
                return reply.status
        except urllib.error.HTTPError as err:
            return err.code


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
        status = transport.post(endpoint.url, body, headers, endpoint.timeout_s)
    except OSError as exc:  # refused, reset, DNS, timeout
        return DeliveryResult("retry", None, f"no response: {type(exc).__name__}")
    if 200 <= status < 300:
        return DeliveryResult("delivered", status, "ok")
    if status in RETRYABLE_STATUS or status >= 500:
        return DeliveryResult("retry", status, f"HTTP {status}")
    return DeliveryResult("rejected", status, f"HTTP {status}: permanent, not retried")


def backoff_delay(endpoint: SubscriberEndpoint, attempt: int, rng: random.Random | None = None) -> int:
    """Seconds before attempt `attempt + 1`: the schedule's step with +-20 % jitter (never 0)."""
    schedule = endpoint.backoff_seconds
    base = schedule[min(attempt - 1, len(schedule) - 1)]
    jitter = (rng or random).uniform(0.8, 1.2)
    return max(1, min(43_200, round(base * jitter)))  # SQS caps a visibility timeout at 12 h
