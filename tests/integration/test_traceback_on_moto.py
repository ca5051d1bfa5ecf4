"""The traceback (ST-5) through the operations API: `GET /orders/{id}/timeline` on moto, the open stage
measured to the API's clock, for orders whose events arrived newest first."""

from __future__ import annotations

import importlib
import json
from datetime import datetime

from infra.demo.traffic import encode, load_stories, mall_headers, mall_secret
from orderhub.clock import FixedClock


def post_and_map(hub, events: list[dict]) -> None:
    for event in events:
        body = encode(event)
        reply = hub.invoke("webhook_ingest", hub.webhook_event(body, mall_headers(mall_secret(hub.config), body)))
        assert reply["statusCode"] == 200
    assert hub.invoke("status_mapper", hub.sqs_event("intake", hub.receive("intake"))) == {"batchItemFailures": []}


def status_flow(hub, order_no: str) -> dict:
    token = hub.config.ops_token
    order = json.loads(hub.invoke("orders_api", hub.api_event(
        "/orders", {"channel": "mall", "channel_order_id": order_no}, token=token))["body"])
    reply = hub.invoke("orders_api", hub.api_event(f"/orders/{order['order_id']}/timeline", token=token))
    assert reply["statusCode"] == 200
    return json.loads(reply["body"])["status_flow"]


def test_the_timeline_says_how_long_each_stage_took_where_the_order_is_and_what_it_waits_for(hub, monkeypatch):
    stories = {s.order_no: s for s in load_stories("mall")}
    clock = FixedClock(datetime.fromisoformat("2026-11-19T13:00:00+08:00"))
    monkeypatch.setattr(importlib.import_module("functions.orders_api.handler"), "_clock", clock)
    # Given an order placed, paid, marked shipped and delivered, its events arriving newest first
    post_and_map(hub, list(reversed(stories["M20261118001"].events[:4])))
    # When an operator reads its timeline an hour after the delivery
    flow = status_flow(hub, "M20261118001")
    # Then each stage lasted until the next, and the order has been delivered for an hour, awaiting confirmation
    assert [(s["stage"], s["seconds_in_stage"]) for s in flow["stages"]] == [
        ("ORDERED", 60), ("PAID", 3 * 3600 - 180), ("SHIP_REQUESTED", 24 * 3600), ("DELIVERED", None)]
    assert (flow["status"], flow["current_stage"], flow["seconds_in_current"]) == ("DELIVERED", "DELIVERED", 3600)
    assert flow["waiting_for"] == "the buyer's confirmation"
    # And ten minutes later, only the open stage has grown
    clock.advance(600)
    later = status_flow(hub, "M20261118001")
    assert later["seconds_in_current"] == 4200 and later["stages"] == flow["stages"]


def test_a_paid_order_cancelled_waits_for_its_refund_and_then_is_closed(hub, monkeypatch):
    stories = {s.order_no: s for s in load_stories("mall")}
    clock = FixedClock(datetime.fromisoformat("2026-11-18T10:00:00+08:00"))
    monkeypatch.setattr(importlib.import_module("functions.orders_api.handler"), "_clock", clock)
    created, paid, cancelled, refunded = stories["M20261118002"].events
    # Given a paid order cancelled 24 minutes later (the cancellation arriving first)
    post_and_map(hub, [cancelled, created, paid])
    flow = status_flow(hub, "M20261118002")
    # Then it is cancelled and waits for the money to go back, for 20 minutes now
    assert (flow["status"], flow["current_stage"], flow["waiting_for"]) == (
        "CANCELLED", "CANCELLED", "the refund of the payment")
    assert flow["seconds_in_current"] == 20 * 60
    # When the refund is reported, the order is closed and waits for nothing
    post_and_map(hub, [refunded])
    flow = status_flow(hub, "M20261118002")
    assert [(s["stage"], s["seconds_in_stage"]) for s in flow["stages"]] == [
        ("ORDERED", 60), ("PAID", 24 * 60), ("CANCELLED", 25 * 60), ("CLOSED", None)]
    assert (flow["status"], flow["current_stage"], flow["waiting_for"]) == ("CLOSED", "CLOSED", "")
