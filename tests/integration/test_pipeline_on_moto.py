"""The whole path on moto: webhook -> intake queue -> canonical order -> stream -> bus -> subscriber push."""

from __future__ import annotations

import json

import pytest

from infra.demo.traffic import encode, load_stories, mall_headers, mall_secret


def body_json(reply: dict):
    return json.loads(reply["body"])


def story(no: str):
    return next(s for s in load_stories("mall") if s.order_no == no)


def post(hub, event: dict, secret: str | None = None, **kwargs) -> dict:
    body = encode(event)
    return hub.invoke("webhook_ingest", hub.webhook_event(body, mall_headers(secret or mall_secret(hub.config), body),
                                                          **kwargs))


def test_a_signed_webhook_is_queued_before_it_is_acknowledged(hub):
    # Given a signed mall event, When it is posted
    reply = post(hub, story("M20261118001").events[0])
    # Then the channel gets its reply and the raw request is already in the intake queue
    assert reply["statusCode"] == 200 and body_json(reply) == {"code": "SUCCESS"}
    (message,) = hub.receive("intake")
    assert json.loads(message["Body"])["channel"] == "mall"


@pytest.mark.parametrize("tamper", ["body", "secret"])
def test_a_tampered_webhook_gets_401_and_stores_nothing(hub, tamper):
    event = story("M20261118001").events[0]
    if tamper == "body":
        body = encode(event)
        headers = mall_headers(mall_secret(hub.config), body)
        reply = hub.invoke("webhook_ingest", hub.webhook_event(body.replace(b"25800", b"25801"), headers))
    else:
        reply = post(hub, event, secret=mall_secret(hub.config) + "x")
    assert reply["statusCode"] == 401
    assert hub.receive("intake") == []


def test_an_ip_outside_the_allow_list_gets_401_once_the_list_changes_without_redeploy(hub):
    # Given the operator restricts the channel to the shop's egress range in Parameter Store
    name = f"{hub.config.config_prefix}/channels/mall"
    hub.client("ssm").put_parameter(Name=name, Type="String", Overwrite=True,
                                    Value=json.dumps({"timestamp_tolerance_s": 300, "allowed_ips": ["192.0.2.0/24"]}))
    # Then a call from elsewhere is refused, and one from the range accepted
    assert post(hub, story("M20261118001").events[0], source_ip="198.51.100.10")["statusCode"] == 401
    assert post(hub, story("M20261118001").events[0], source_ip="192.0.2.44")["statusCode"] == 200


def map_all(hub) -> dict:
    messages = hub.receive("intake")
    return hub.invoke("status_mapper", hub.sqs_event("intake", messages)) if messages else {}


def get_order(hub, no: str) -> dict:
    reply = hub.invoke("orders_api", hub.api_event("/orders", {"channel": "mall", "channel_order_id": no},
                                                   token=hub.config.ops_token))
    assert reply["statusCode"] == 200, reply
    return body_json(reply)


def test_events_become_one_canonical_order_with_its_timeline(hub):
    s = story("M20261118006")
    for event in reversed(s.events):  # newest first: the worst arrival order
        post(hub, event)
    assert map_all(hub) == {"batchItemFailures": []}
    order = get_order(hub, s.order_no)
    assert (order["status"], order["payment_status"]) == ("CLOSED", "REFUNDED")
    assert order["total_amount"] == 39900 and order["payment_claim"] == 39900
    assert order["refunded_amount"] == 0  # the shop's word: its money is booked from the payment providers
    timeline = body_json(hub.invoke("orders_api", hub.api_event(f"/orders/{order['order_id']}/timeline",
                                                                token=hub.config.ops_token)))
    assert [st["stage"] for st in timeline["status_flow"]["stages"]] == \
        ["ORDERED", "PAID", "SHIP_REQUESTED", "DELIVERED", "CLOSED"]
    assert [e["channel_event_id"] for e in timeline["event_log"]] == [e["event_id"] for e in s.events]


def test_a_redelivered_intake_message_changes_nothing(hub):
    post(hub, story("M20261118005").events[0])
    (message,) = hub.receive("intake")
    hub.invoke("status_mapper", hub.sqs_event("intake", [message]))
    before = get_order(hub, "M20261118005")
    records_before = len(hub.stream_event()["Records"])
    # When SQS delivers the same message again
    hub.invoke("status_mapper", hub.sqs_event("intake", [message]))
    # Then the order, its version and the stream (so the domain events) are unchanged
    assert get_order(hub, "M20261118005") == before
    assert len(hub.stream_event()["Records"]) == records_before


def test_a_poison_message_fails_alone_and_the_rest_of_the_batch_commits(hub):
    post(hub, story("M20261118005").events[0])
    (good,) = hub.receive("intake")
    poison = {**good, "MessageId": "poison-1", "Body": '{"channel": "mall", "not": "an intake message"}'}
    reply = hub.invoke("status_mapper", hub.sqs_event("intake", [good, poison]))
    assert reply == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    assert get_order(hub, "M20261118005")["status"] == "PENDING_PAYMENT"


def test_order_changes_reach_subscribers_signed_and_filtered(hub):
    s = story("M20261118001")
    for event in s.events[:2]:  # created, paid
        post(hub, event)
    map_all(hub)
    # When the outbox stream is published
    assert hub.invoke("event_publisher", hub.stream_event()) == {"batchItemFailures": []}
    # Then each subscriber's queue holds what its rule selects, and the dispatcher pushes it
    for name in ("wms", "erp", "crm"):
        messages = hub.receive(f"sub-{name}")
        if messages:
            assert hub.invoke("dispatcher", hub.sqs_event(f"sub-{name}", messages)) == {"batchItemFailures": []}
    types = {n: sorted(e["type"] for e in inbox.events) for n, inbox in hub.inboxes.items()}
    assert "OrderStatusChanged" in types["wms"] and "OrderCreated" in types["wms"]
    assert [e["data"]["status"] for e in hub.inboxes["erp"].events] == ["PAID"]  # ERP wants PAID and later only
    assert all(inbox.bad_signatures == 0 and inbox.duplicates == 0 for inbox in hub.inboxes.values())


def test_a_failed_push_is_retried_later_and_a_rejected_one_is_parked_with_its_reason(hub):
    post(hub, story("M20261118005").events[0])
    map_all(hub)
    hub.invoke("event_publisher", hub.stream_event())
    wms = hub.receive("sub-wms")
    assert wms
    # Given the WMS answers 503: the batch reports the failures and the messages wait out their backoff
    hub.receiver.fail("/wms/orderhub-events", times=len(wms), status=503)
    reply = hub.invoke("dispatcher", hub.sqs_event("sub-wms", wms))
    assert {f["itemIdentifier"] for f in reply["batchItemFailures"]} == {m["MessageId"] for m in wms}
    assert hub.receive("sub-wms") == []  # invisible for the backoff, not lost
    # Given the CRM answers 422 (it will never accept this): parked in its DLQ at once, with the reason
    crm = hub.receive("sub-crm")
    hub.receiver.fail("/crm/orderhub-events", times=len(crm), status=422)
    assert hub.invoke("dispatcher", hub.sqs_event("sub-crm", crm)) == {"batchItemFailures": []}
    parked = hub.receive("sub-crm-dlq")
    assert len(parked) == len(crm)
    assert parked[0]["MessageAttributes"]["reason"]["StringValue"].startswith("HTTP 422")


def test_a_partially_failed_publish_queues_that_records_events_to_publish_again(hub, monkeypatch):
    post(hub, story("M20261118005").events[0])
    post(hub, story("M20261118003").events[0])
    map_all(hub)
    from orderhub.aws import client

    events = client("events")
    real_put_events = events.put_events

    def put_events(Entries):  # noqa: N803 - boto3's name
        if any("M20261118003" in e["Detail"] for e in Entries):  # EventBridge refuses this order's entries
            return {"FailedEntryCount": len(Entries), "Entries": [{"ErrorCode": "InternalFailure"}] * len(Entries)}
        return real_put_events(Entries=Entries)

    monkeypatch.setattr(events, "put_events", put_events)
    stream = hub.stream_event()
    reply = hub.invoke("event_publisher", stream)
    # The shard moves on; exactly the refused order's events wait in `unpublished` (test_publisher_redrive.py)
    assert reply["batchItemFailures"] == []
    waiting = [json.loads(m["Body"])["detail"]["channel_order_id"] for m in hub.receive("unpublished")]
    assert waiting and set(waiting) == {"M20261118003"}


def test_the_ops_api_needs_the_bearer_token(hub):
    assert hub.invoke("orders_api", hub.api_event("/orders/oh_x"))["statusCode"] == 401
    assert hub.invoke("orders_api", hub.api_event("/orders/oh_x", token="wrong-token-000000"))["statusCode"] == 401
    assert hub.invoke("orders_api", hub.api_event("/orders/oh_x", token=hub.config.ops_token))["statusCode"] == 404


def test_hub_health_reports_backlog_and_dead_letters(hub):
    post(hub, story("M20261118005").events[0])
    summary = hub.invoke("hub_health", {"schedule": "hub-health", "scheduled_time": "2026-11-22T01:00:00Z"})
    assert summary["queues"]["intake"]["visible"] == 1
    assert summary["dead_letters"] == {}
