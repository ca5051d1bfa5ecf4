"""End to end over HTTP: the local runtime (moto + Lambda-service stand-in) with every real handler.

The runtime's timers follow its manual clock: a push the dispatcher held back for its backoff comes
back when a test moves the clock past it, and no function is ended for being slow on a busy machine.
"""

from __future__ import annotations

import time

import pytest
from json_http import http

from infra.config import load_config
from infra.demo.traffic import encode, load_stories, mall_headers, mall_secret
from infra.local.clock import ManualClock
from infra.standins.downstream import by_subscriber, receiver_for

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def stack():
    from datetime import UTC, datetime

    from infra.local.runtime import LocalRuntime

    receiver, config, paths = receiver_for(load_config())
    # A push the receiver took but answered after the dispatcher stopped waiting is sent again: a duplicate
    # by design (subscribers dedupe by event id). These tests count duplicates, so on a busy machine the
    # dispatcher waits for the receiver as long as the configuration allows.
    patient = [s.model_copy(update={"timeout_s": 25, "connect_timeout_s": 10}) for s in config.subscribers]
    config = config.model_copy(update={"subscribers": patient})
    clock = ManualClock(datetime.now(UTC))
    with receiver, LocalRuntime(config, port=0, clock=clock, timers_follow_clock=True) as runtime:
        runtime.receiver, runtime.inboxes, runtime.paths = receiver, by_subscriber(receiver, paths), paths
        yield runtime


def post(stack, event: dict, secret: str | None = None, channel: str = "mall") -> tuple[int, dict]:
    body = encode(event)
    headers = mall_headers(secret or mall_secret(stack.config), body)
    return http("POST", f"{stack.api_url}/webhooks/{channel}", body, headers)


def get(stack, path: str, token: str | None = "default") -> tuple[int, dict]:
    token = stack.config.ops_token if token == "default" else token
    return http("GET", f"{stack.api_url}{path}", headers={"Authorization": f"Bearer {token}"} if token else {})


def order_of(stack, no: str) -> tuple[int, dict]:
    return get(stack, f"/orders?channel=mall&channel_order_id={no}")


def test_a_signed_webhook_becomes_an_order_with_status_and_timeline(stack):
    story = load_stories("mall")[0]
    # When the shop posts its events, newest first, each twice
    for event in reversed(story.events):
        assert post(stack, event) == (200, {"code": "SUCCESS"})
        assert post(stack, event) == (200, {"code": "SUCCESS"})
    stack.wait_until_idle()
    # Then the canonical order is there, where the story ends, changed once per distinct event
    status, order = order_of(stack, story.order_no)
    assert status == 200 and order["status"] == story.expect["status"]
    assert order["version"] == len(story.events)
    status, timeline = get(stack, f"/orders/{order['order_id']}/timeline")
    assert status == 200
    assert [e["channel_event_id"] for e in timeline["event_log"]] == [e["event_id"] for e in story.events]
    assert timeline["status_flow"]["status"] == story.expect["status"]
    assert get(stack, f"/orders/{order['order_id']}") == (200, order)


def test_a_tampered_webhook_gets_401_and_nothing_is_stored(stack):
    event = {**load_stories("mall")[1].events[0]}
    event["order"] = {**event["order"], "order_no": "TAMPERED1"}
    body = encode(event)
    headers = mall_headers(mall_secret(stack.config), body)
    status, reply = http("POST", f"{stack.api_url}/webhooks/mall", body.replace(b"15600", b"15601"), headers)
    assert (status, reply["message"]) == (401, "signature does not match")
    stack.wait_until_idle()
    assert order_of(stack, "TAMPERED1")[0] == 404


@pytest.mark.parametrize("case, expected", [("malformed", 400), ("unknown-channel", 404), ("too-large", 413),
                                            ("stale", 401), ("unsigned", 401)])
def test_bad_requests_get_a_clear_4xx(stack, case, expected):
    event = load_stories("mall")[2].events[0]
    body = encode(event)
    secret = mall_secret(stack.config)
    url = f"{stack.api_url}/webhooks/mall"
    if case == "malformed":
        bad = encode({**event, "event_time": "yesterday"})
        status, reply = http("POST", url, bad, mall_headers(secret, bad))
    elif case == "unknown-channel":
        status, reply = http("POST", f"{stack.api_url}/webhooks/nosuch", body, mall_headers(secret, body))
    elif case == "too-large":
        big = b"{" + b" " * (64 * 1024) + b"}"
        status, reply = http("POST", url, big, mall_headers(secret, big))
    elif case == "stale":
        status, reply = http("POST", url, body, mall_headers(secret, body, at=time.time() - 301))
    else:
        status, reply = http("POST", url, body, {"Content-Type": "application/json"})
    assert status == expected and reply.get("message")


def test_the_ops_api_wants_its_token(stack):
    assert get(stack, "/orders/oh_none", token=None)[0] == 401
    assert get(stack, "/orders/oh_none", token="not-the-token-xxxxxxx")[0] == 401
    assert get(stack, "/orders/oh_none")[0] == 404
    assert get(stack, "/orders?channel=mall")[0] == 400


def test_a_subscriber_outage_is_retried_until_it_recovers_without_duplicates(stack):
    # Given the WMS failing its next two pushes
    wms = stack.inboxes["wms"]
    stack.receiver.fail(stack.paths["wms"], times=2)
    story = load_stories("mall")[4]
    for event in story.events:
        assert post(stack, event)[0] == 200
    stack.wait_until_idle()
    # When time passes the dispatcher's backoff (1 s, then 2 s, +20 % jitter) once per failure, and once more
    for _ in range(3):
        stack.clock.advance(5)
        stack.wait_until_idle()
    # Then the pushes that failed were retried and delivered, none twice
    _, order = order_of(stack, story.order_no)
    keys = [e["id"] for e in wms.events if e["data"]["order_id"] == order["order_id"]]
    assert wms.failures_served >= 2 and len(keys) >= 2
    assert all(inbox.duplicates == 0 and inbox.bad_signatures == 0 for inbox in stack.inboxes.values())


def test_the_schedule_fires_in_the_business_time_zone_when_the_clock_moves(stack):
    before = stack.invocations["hub_health"]
    stack.clock.advance(5 * 60)  # returns once each occurrence it passed has run
    assert stack.invocations["hub_health"] == before + 1
