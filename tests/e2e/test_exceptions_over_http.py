"""End to end over HTTP: an order paid and never shipped becomes a logistics exception when the scheduler's
clock passes paid + 2 h, and is escalated when it passes the exception's SLA (EXC-1..2).

The runtime has its own manual clock (moving it fires every schedule occurrence in between, in order)
and a logistics SLA of one hour, so the escalation is reached in a few dozen scheduled runs. The
notifier is replaced by a recorder: these tests look at what the watchdog asked to be told, not at
the chat robots.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from json_http import http

from infra.config import load_config
from infra.demo.traffic import encode, mall_headers, mall_secret
from infra.local.clock import ManualClock
from infra.standins.downstream import receiver_for
from infra.standins.wechatpay import from_config

pytestmark = pytest.mark.e2e

LOGISTICS_SLA_MIN = 60


class AlertRecorder:
    """Stands in for the notifier: keeps every alert the hub queued."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict, context: Any) -> dict:
        with self._lock:
            self.alerts += [json.loads(r["body"]) for r in event.get("Records", [])]
        return {"batchItemFailures": []}


@pytest.fixture(scope="module")
def stack():
    from infra.local.runtime import LocalRuntime

    receiver, config, _ = receiver_for(load_config())
    types = dict(config.exceptions.types)
    types["logistics"] = types["logistics"].model_copy(update={"sla_minutes": LOGISTICS_SLA_MIN})
    config = config.model_copy(update={"exceptions": config.exceptions.model_copy(update={"types": types})})
    recorder = AlertRecorder()
    clock = ManualClock(datetime.now(UTC))
    with receiver, LocalRuntime(config, port=0, clock=clock, handler_overrides={"notifier": recorder},
                                batching_windows=False, timers_follow_clock=True) as runtime:
        runtime.alert_recorder = recorder
        yield runtime



def ops(stack, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {stack.config.ops_token}", "Content-Type": "application/json"}
    return http(method, f"{stack.api_url}{path}", json.dumps(body).encode() if body is not None else None, headers)


def post_mall(stack, event: dict) -> None:
    body = encode(event)
    status, reply = http("POST", f"{stack.api_url}/webhooks/mall", body, mall_headers(mall_secret(stack.config), body))
    assert (status, reply) == (200, {"code": "SUCCESS"})


def advance(stack, minutes: int) -> None:
    """Move the scheduler's clock (each sla-watch occurrence in between runs, in order), then let queues drain."""
    stack.clock.advance(minutes * 60)
    stack.wait_until_idle()


def exceptions_of(stack, channel_order_id: str, **query: str) -> list[dict]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    status, listing = ops(stack, "GET", f"/exceptions?{qs}")
    assert status == 200
    return [e for e in listing["exceptions"] if e["channel_order_id"] == channel_order_id]


def test_an_order_paid_and_never_shipped_becomes_an_exception_after_2_h_and_escalates_past_its_sla(stack):
    # Given a shop order created and paid, and nothing shipped
    paid_at = stack.clock.now() - timedelta(minutes=1)
    no = f"EXC{int(time.time())}"
    post_mall(stack, {"event_id": f"evt_{no}_01", "event_type": "order.created", "shop_id": "mini-01",
                      "event_time": (paid_at - timedelta(minutes=1)).isoformat(),
                      "order": {"order_no": no, "currency": "CNY", "total_amount": 12900,
                                "lines": [{"sku": "TEA-LJ-250", "quantity": 1, "unit_price": 12900}]}})
    post_mall(stack, {"event_id": f"evt_{no}_02", "event_type": "order.paid", "shop_id": "mini-01",
                      "event_time": paid_at.isoformat(),
                      "order": {"order_no": no, "payment": {"transaction_id": f"42{no}", "amount": 12900}}})
    # ... and the payment confirmed by WeChat Pay's callback (the shop is paid through it)
    wechatpay = from_config(stack.config, stack.api_url, stack.clock)
    headers, body = wechatpay.request(wechatpay.payment_notification(no, 12900, at=paid_at))
    assert http("POST", f"{stack.api_url}/webhooks/wechatpay", body, headers)[0] == 200
    stack.wait_until_idle()
    assert exceptions_of(stack, no) == []

    # When the clock moves to just under 2 h after payment, the scheduled runs raise nothing yet
    advance(stack, 115)
    assert exceptions_of(stack, no) == []

    # When it passes paid + 2 h (and the next 5-minute run), the exception is there, for the warehouse
    advance(stack, 10)
    (exc,) = exceptions_of(stack, no)
    assert (exc["type"], exc["rule"], exc["state"], exc["owner"]) == ("logistics", "not_shipped", "open", "warehouse")
    raised_at = datetime.fromisoformat(exc["raised_at"])
    assert paid_at + timedelta(minutes=120) <= raised_at <= paid_at + timedelta(minutes=125)
    assert datetime.fromisoformat(exc["sla_deadline"]) == raised_at + timedelta(minutes=LOGISTICS_SLA_MIN)
    assert exc["escalated_at"] is None
    told = [a for a in stack.alert_recorder.alerts if exc["exception_id"] in a["text"]]
    assert [(a["route"], a["key"]) for a in told] == [("warehouse", "exception-raised:not_shipped:warehouse")]

    # When the clock passes the exception's SLA deadline, it is escalated, once, and the supervisors are told
    advance(stack, LOGISTICS_SLA_MIN + 5)
    status, escalated = ops(stack, "GET", f"/exceptions/{exc['exception_id']}")
    assert status == 200 and escalated["state"] == "open"
    assert raised_at + timedelta(minutes=LOGISTICS_SLA_MIN) <= datetime.fromisoformat(escalated["escalated_at"]) \
        <= raised_at + timedelta(minutes=LOGISTICS_SLA_MIN + 5)
    advance(stack, 10)
    told = [a for a in stack.alert_recorder.alerts if exc["exception_id"] in a["text"]]
    assert [(a["route"], a["severity"]) for a in told] == [("warehouse", "warning"), ("supervisors", "critical")]
    assert ops(stack, "GET", f"/exceptions/{exc['exception_id']}")[1]["escalated_at"] == escalated["escalated_at"]

    # And an operator resolves it with a note; resolving again is refused
    note = "parcel re-picked and scanned out"
    assert ops(stack, "POST", f"/exceptions/{exc['exception_id']}/resolve", {"by": "li.wei", "note": note})[0] == 200
    assert ops(stack, "POST", f"/exceptions/{exc['exception_id']}/resolve", {"by": "li.wei", "note": note})[0] == 409
    assert exceptions_of(stack, no) == []
