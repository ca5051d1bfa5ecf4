"""What event_publisher does with events the bus refuses: it names exactly those, queues them to be
published again (the shard moves on), and publishes a queued one later with the same event id."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.mall_events import created, paid, shipped

from functions.event_publisher import handler
from orderhub.bus.domain_events import BusEntry, events_for_change
from orderhub.bus.publisher import EventBridgePublisher, PublishError
from orderhub.bus.unpublished import entry_from_body, message_body
from orderhub.channels.mall import CHANNEL
from orderhub.lifecycle.machine import apply_event
from orderhub.store.orders import order_to_item

QUEUE_URL = "https://sqs.ap-southeast-1.amazonaws.com/123456789012/orderhub-test-unpublished"


class Context:
    function_name = "orderhub-test-event_publisher"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:ap-southeast-1:123456789012:function:orderhub-test-event_publisher"
    aws_request_id = "req-1"


def order_versions(*raws):
    """The order after each event, version 1, 2, ..."""
    order, versions = None, []
    for n, raw in enumerate(raws, start=1):
        (event,) = CHANNEL.parse(json.dumps(raw).encode())
        order, _ = apply_event(order, event)
        order = order.model_copy(update={"version": n, "updated_in_hub_at": f"2026-11-22T00:00:0{n}.000+00:00"})
        versions.append(order)
    return versions


def entries(count: int) -> list[BusEntry]:
    """`count` distinct domain events (orders M0, M1, ... created: two events each)."""
    out: list[BusEntry] = []
    n = 0
    while len(out) < count:
        (order,) = order_versions(created(order_no=f"M{n}"))
        out += events_for_change(None, order)
        n += 1
    return out[:count]


class Bus:
    """PutEvents refusing the entries whose event ids are in `refuse`; or unreachable from call `down_from` on."""

    def __init__(self, refuse: set[str] = frozenset(), down_from: int | None = None) -> None:
        self.refuse, self.down_from = refuse, down_from
        self.accepted: list[str] = []
        self.calls = 0

    def put_events(self, Entries):  # noqa: N803 - boto3's name
        self.calls += 1
        if self.down_from is not None and self.calls > self.down_from:
            raise EndpointConnectionError(endpoint_url="https://events.ap-southeast-1.amazonaws.com")
        results = []
        for e in Entries:
            event_id = json.loads(e["Detail"])["event_id"]
            if event_id in self.refuse:
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
            else:
                self.accepted.append(event_id)
                results.append({"EventId": f"eb-{event_id}"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 35).flatmap(lambda n: st.lists(st.booleans(), min_size=n, max_size=n)))
def test_a_refusal_names_exactly_the_refused_entries_and_every_other_one_is_published(refused_mask):
    batch = entries(len(refused_mask))
    refused = [e for e, no in zip(batch, refused_mask, strict=True) if no]
    bus = Bus(refuse={e.detail.event_id for e in refused})
    if refused:
        with pytest.raises(PublishError, match="ThrottlingException") as raised:
            EventBridgePublisher("bus", client=bus).publish(batch)
        assert list(raised.value.unpublished) == refused
    else:
        EventBridgePublisher("bus", client=bus).publish(batch)
    assert bus.accepted == [e.detail.event_id for e in batch if e not in refused]
    assert bus.calls == -(-len(batch) // 10)  # chunks of ten, each sent once


@given(st.integers(1, 35), st.integers(0, 3), st.sets(st.integers(0, 34)))
def test_a_bus_out_of_reach_leaves_everything_from_that_chunk_on_unpublished(count, down_from, refused_at):
    batch = entries(count)
    refused = {batch[i].detail.event_id for i in refused_at if i < count}
    bus = Bus(refuse=refused, down_from=down_from)
    if down_from * 10 >= count and not refused:
        EventBridgePublisher("bus", client=bus).publish(batch)
        return
    with pytest.raises(PublishError) as raised:
        EventBridgePublisher("bus", client=bus).publish(batch)
    unpublished = {e.detail.event_id for e in raised.value.unpublished}
    # Nothing accepted is called unpublished, nothing unaccepted is forgotten
    assert unpublished == {e.detail.event_id for e in batch} - set(bus.accepted)


class Queue:
    """SendMessageBatch: takes everything, or refuses everything (its KMS key disabled, say)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.messages: list[dict] = []

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 - boto3's names
        assert QueueUrl == QUEUE_URL and len(Entries) <= 10
        if self.refuse:
            return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "KMS.DisabledException"} for e in Entries]}
        self.messages += Entries
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


@pytest.fixture
def publisher(monkeypatch):
    monkeypatch.setenv("UNPUBLISHED_QUEUE_URL", QUEUE_URL)

    def wire(bus: Bus, queue: Queue) -> None:
        monkeypatch.setattr(handler, "_publisher", EventBridgePublisher("bus", client=bus))
        monkeypatch.setattr(handler, "_queue", queue)

    return wire


def stream_record(sequence: int, old, new) -> dict:
    images = {"NewImage": order_to_item(new), **({"OldImage": order_to_item(old)} if old else {})}
    return {"eventID": str(sequence), "eventName": "MODIFY" if old else "INSERT", "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": str(sequence), **images}}


def test_refused_events_are_queued_and_the_stream_moves_on(publisher):
    # Given an order's three versions on the stream, and a bus that refuses the status change to PAID
    v1, v2, v3 = order_versions(created(), paid(), shipped())
    records = [stream_record(1, None, v1), stream_record(2, v1, v2), stream_record(3, v2, v3)]
    (to_paid,) = events_for_change(v1, v2)
    bus, queue = Bus(refuse={to_paid.detail.event_id}), Queue()
    publisher(bus, queue)
    # When the batch is handled
    reply = handler.lambda_handler({"Records": records}, Context())
    # Then no record fails (the shard is not held), the others were published, and the refused one waits
    assert reply == {"batchItemFailures": []}
    assert to_paid.detail.event_id not in bus.accepted and len(bus.accepted) == 3
    (message,) = queue.messages
    assert entry_from_body(message["MessageBody"]) == to_paid
    assert "ThrottlingException" in message["MessageAttributes"]["reason"]["StringValue"]


def test_a_record_whose_refused_events_cannot_be_queued_fails_and_is_retried_from_the_stream(publisher):
    v1, v2 = order_versions(created(), paid())
    (to_paid,) = events_for_change(v1, v2)
    publisher(Bus(refuse={to_paid.detail.event_id}), Queue(refuse=True))
    reply = handler.lambda_handler({"Records": [stream_record(1, None, v1), stream_record(2, v1, v2)]}, Context())
    assert reply == {"batchItemFailures": [{"itemIdentifier": "2"}]}


def sqs_record(message_id: str, body: str) -> dict:
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}", "body": body, "attributes": {},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:ap-southeast-1:123456789012:orderhub-test-unpublished",
            "awsRegion": "ap-southeast-1"}


def test_a_queued_event_is_published_with_its_own_id_and_a_refusal_leaves_it_for_sqs_to_retry(publisher):
    batch = entries(3)
    bus = Bus(refuse={batch[1].detail.event_id})
    publisher(bus, Queue())
    event = {"Records": [sqs_record(f"m{i}", message_body(e)) for i, e in enumerate(batch)]
             + [sqs_record("junk", '{"source": "elsewhere"}')]}
    reply = handler.lambda_handler(event, Context())
    assert reply == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "junk"}]}
    assert bus.accepted == [batch[0].detail.event_id, batch[2].detail.event_id]
    # A bus refusing everything is a reported failure of each message, not an error of the function
    assert handler.lambda_handler({"Records": [sqs_record("m1", message_body(batch[1]))]}, Context()) == \
        {"batchItemFailures": [{"itemIdentifier": "m1"}]}


@settings(max_examples=50, deadline=None)
@given(st.permutations([created, paid, shipped]))
def test_a_queued_event_is_the_same_event(history):
    versions = order_versions(*(make() for make in history))
    changes = events_for_change(None, versions[0]) + [
        e for old, new in zip(versions, versions[1:], strict=False) for e in events_for_change(old, new)]
    for entry in changes:
        assert entry_from_body(message_body(entry)) == entry


def test_a_client_error_is_named_by_its_code():
    class Throttled:
        def put_events(self, Entries):  # noqa: N803
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutEvents")

    with pytest.raises(PublishError, match="2 of 2 entries not sent: ThrottlingException") as raised:
        EventBridgePublisher("bus", client=Throttled()).publish(entries(2))
    assert len(raised.value.unpublished) == 2
