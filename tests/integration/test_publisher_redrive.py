"""Domain events the bus refused are published later, once: through `unpublished`, its DLQ, and
`publisher-failures` read back from the orders stream. Real handlers on moto, real subscribers over HTTP."""

from __future__ import annotations

import importlib
import json
import threading

from botocore.exceptions import ClientError

from infra.cli.dlq import describe_parked, peek, redrive, redrive_stream_failures
from infra.demo.traffic import encode, load_stories, mall_headers, mall_secret
from infra.local.pollers import StreamPoller
from orderhub.bus.domain_events import events_for_stream_record

SUBSCRIBER_QUEUES = ("sub-wms", "sub-erp", "sub-crm")
ERP_STATUSES = {"PAID", "SHIPPED", "COMPLETED", "CANCELLED", "CLOSED"}


def post_and_map(hub, order_nos: dict[str, int]) -> None:
    """The first `n` events of each mall story, through ingest and the status mapper."""
    stories = {s.order_no: s for s in load_stories("mall")}
    for no, n in order_nos.items():
        for event in stories[no].events[:n]:
            body = encode(event)
            reply = hub.invoke("webhook_ingest", hub.webhook_event(body, mall_headers(mall_secret(hub.config), body)))
            assert reply["statusCode"] == 200
    messages = hub.receive("intake")
    assert hub.invoke("status_mapper", hub.sqs_event("intake", messages)) == {"batchItemFailures": []}


def refuse_every_entry(patch, code: str = "InternalFailure") -> None:
    """EventBridge answers HTTP 200 and refuses each entry (FailedEntryCount), as in a partial outage."""
    from orderhub.aws import client

    events = client("events")
    patch.setattr(events, "put_events", lambda Entries: {  # noqa: N803 - boto3's name
        "FailedEntryCount": len(Entries), "Entries": [{"ErrorCode": code, "ErrorMessage": "refused"}] * len(Entries)})


def depth(hub, queue: str) -> int:
    attrs = hub.client("sqs").get_queue_attributes(QueueUrl=hub.queue_url(queue), AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def consume(hub, queue: str, function: str, rounds: int = 20) -> int:
    """Hand the queue's messages to the function as its SQS trigger would (deleting those that
    succeeded), a failed message visible again at once (its visibility timeout taken as passed),
    until the queue is empty: moto moves a message to the DLQ once received maxReceiveCount times."""
    sqs, url, failures = hub.client("sqs"), hub.queue_url(queue), 0
    for _ in range(rounds):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                       AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not messages:
            return failures
        reply = hub.invoke(function, hub.sqs_event(queue, messages))
        failed = {f["itemIdentifier"] for f in reply["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        failures += len(failed)
    raise AssertionError(f"{queue} still holds messages after {rounds} rounds")


def deliver_to_subscribers(hub) -> None:
    for queue in SUBSCRIBER_QUEUES:
        assert consume(hub, queue, "dispatcher") == 0


def expected_ids(hub) -> dict[str, set[str]]:
    """Every domain event the orders' changes stand for, by the subscriber whose rule selects it."""
    entries = [e for r in hub.stream_event()["Records"] for e in events_for_stream_record(r)]
    return {
        "crm": {e.detail.event_id for e in entries},
        "wms": {e.detail.event_id for e in entries if e.detail_type in ("OrderCreated", "OrderStatusChanged")},
        "erp": {e.detail.event_id for e in entries
                if e.detail_type == "OrderStatusChanged" and e.detail.status in ERP_STATUSES},
    }


def received(hub) -> dict[str, dict[str, int]]:
    return {name: dict(hub.inboxes[name].keys) for name in ("crm", "wms", "erp")}


def test_events_the_bus_refuses_are_parked_after_their_retries_and_published_once_by_a_redrive(hub, monkeypatch):
    # Given three orders written while EventBridge refuses every entry (HTTP 200, FailedEntryCount)
    post_and_map(hub, {"M20261118001": 2, "M20261118005": 1, "M20261118006": 3})
    expected = expected_ids(hub)
    with monkeypatch.context() as fault:
        refuse_every_entry(fault)
        # When the publisher reads the stream, it does not hold the shard: each refused event waits in `unpublished`
        assert hub.invoke("event_publisher", hub.stream_event()) == {"batchItemFailures": []}
        assert depth(hub, "unpublished") == len(expected["crm"]) > 3
        # and while the bus keeps refusing, SQS retries each of them, then parks it in the DLQ
        assert consume(hub, "unpublished", "event_publisher") >= 5 * len(expected["crm"])
    assert (depth(hub, "unpublished"), depth(hub, "unpublished-dlq")) == (0, len(expected["crm"]))
    deliver_to_subscribers(hub)
    assert all(not keys for keys in received(hub).values())
    # Then `dlq show` says what each parked message is and why, without its body
    sqs = hub.client("sqs")
    shown = [line for m in peek(sqs, hub.queue_url("unpublished-dlq"), 50) for line in describe_parked(m)]
    reasons = [line for line in shown if line.strip().startswith("reason:")]
    assert len(reasons) == len(expected["crm"]) and all("failed: ['InternalFailure']" in r for r in reasons)
    assert any("OrderStatusChanged event" in line and "(mall M20261118006), status" in line for line in shown)
    # When the fault is fixed (the bus takes entries again) and an operator redrives the DLQ
    assert redrive(sqs, hub.queue_url("unpublished-dlq"), hub.queue_url("unpublished")) == (len(expected["crm"]), 0)
    assert consume(hub, "unpublished", "event_publisher") == 0
    deliver_to_subscribers(hub)
    # Then every subscriber has every event its rule selects, each Idempotency-Key exactly once
    assert {name: set(keys) for name, keys in received(hub).items()} == expected
    assert all(n == 1 for keys in received(hub).values() for n in keys.values())
    # And publishing the same changes again (a stream retry, a second redrive) changes nothing downstream
    events_before = {name: list(hub.inboxes[name].events) for name in ("crm", "wms", "erp")}
    assert hub.invoke("event_publisher", hub.stream_event()) == {"batchItemFailures": []}
    deliver_to_subscribers(hub)
    assert {name: set(keys) for name, keys in received(hub).items()} == expected
    assert {name: list(hub.inboxes[name].events) for name in ("crm", "wms", "erp")} == events_before
    assert depth(hub, "unpublished") == depth(hub, "unpublished-dlq") == depth(hub, "publisher-failures") == 0


class _NoWait(threading.Event):
    """Lambda's prompt stream retries without the local runtime's pause between them."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


class RefusingQueue:
    """SQS refusing every send (say, its KMS key disabled): the publisher cannot park either."""

    def send_message_batch(self, QueueUrl, Entries):  # noqa: N803 - boto3's names
        return {"Successful": [], "Failed": [{"Id": e["Id"], "Code": "KMS.DisabledException", "SenderFault": False}
                                             for e in Entries]}


def test_a_stream_batch_lambda_gave_up_on_is_read_back_from_the_stream_and_published_once(hub, monkeypatch):
    # Given two orders written while the bus refuses entries and the unpublished queue refuses sends
    post_and_map(hub, {"M20261118001": 2, "M20261118005": 1})
    expected = expected_ids(hub)
    publisher = importlib.import_module("functions.event_publisher.handler")
    with monkeypatch.context() as fault:
        refuse_every_entry(fault, code="ThrottlingException")
        fault.setattr(publisher, "_queue", RefusingQueue())
        # When Lambda's stream trigger (the local runtime's, same semantics) retries the batch and gives up
        (trigger,) = [t for t in hub.topology.function("event_publisher").triggers if hasattr(t, "table")]
        poller = StreamPoller("event_publisher", trigger, hub.res.stream_arns["orders"],
                              "arn:aws:lambda:ap-southeast-1:123456789012:function:event_publisher",
                              hub.queue_url("publisher-failures"), "ap-southeast-1", hub.client("dynamodbstreams"),
                              hub.client("sqs"), hub.invoke, batching_window_s=0)
        poller._stop = _NoWait()
        assert poller.poll_once()
    # Then publisher-failures holds Lambda's description of each batch (not its records), and nothing was published
    sqs = hub.client("sqs")
    parked = peek(sqs, hub.queue_url("publisher-failures"), 10)
    assert len(parked) == poller.discarded_batches >= 1
    assert all("DDBStreamBatchInfo" in json.loads(m["Body"]) for m in parked)
    summaries = [line for m in parked for line in describe_parked(m) if "stream batch" in line]
    assert len(summaries) == len(parked)
    assert all("Lambda gave up on (RetryAttemptsExhausted" in s and "on the stream for about" in s for s in summaries)
    described = sum(int(s.split("stream batch of ")[1].split()[0]) for s in summaries)
    assert described == len(hub.stream_event()["Records"])
    # When the faults are fixed and an operator redrives publisher-failures
    queued, left = redrive_stream_failures(sqs, hub.client("dynamodbstreams"), hub.queue_url("publisher-failures"),
                                           hub.queue_url("unpublished"))
    assert (queued, left) == (len(expected["crm"]), 0)
    assert consume(hub, "unpublished", "event_publisher") == 0
    deliver_to_subscribers(hub)
    # Then every subscriber has every event, each Idempotency-Key once, and nothing is parked
    assert {name: set(keys) for name, keys in received(hub).items()} == expected
    assert all(n == 1 for keys in received(hub).values() for n in keys.values())
    assert depth(hub, "publisher-failures") == depth(hub, "unpublished") == 0


class TrimmedStream:
    """A stream past its retention: DynamoDB refuses to position at a trimmed sequence number."""

    def get_shard_iterator(self, **kwargs):
        raise ClientError({"Error": {"Code": "TrimmedDataAccessException", "Message": "trimmed"}},
                          "GetShardIterator")


def test_a_batch_past_the_streams_retention_stays_parked_and_the_operator_is_told(hub, capsys):
    # Given Lambda's description of a batch that failed two days ago
    record = {"requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
              "version": "1.0", "timestamp": "2026-11-20T01:00:00.000Z",
              "DDBStreamBatchInfo": {"shardId": "shardId-1", "startSequenceNumber": "100", "endSequenceNumber": "140",
                                     "batchSize": 12, "streamArn": hub.res.stream_arns["orders"]}}
    sqs = hub.client("sqs")
    sqs.send_message(QueueUrl=hub.queue_url("publisher-failures"), MessageBody=json.dumps(record))
    (parked,) = peek(sqs, hub.queue_url("publisher-failures"), 10)
    assert any("past the stream's 24 h retention" in line for line in describe_parked(parked))
    # When an operator redrives it
    assert redrive_stream_failures(sqs, TrimmedStream(), hub.queue_url("publisher-failures"),
                                   hub.queue_url("unpublished")) == (0, 1)
    # Then it is still parked, nothing was queued, and the operator reads why
    assert depth(hub, "publisher-failures") == 1 and depth(hub, "unpublished") == 0
    assert "left parked: TrimmedDataAccessException" in capsys.readouterr().err
