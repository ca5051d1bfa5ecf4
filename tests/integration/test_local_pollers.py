"""Event source mappings in the local runtime: SQS and DynamoDB-stream batches with Lambda's failure semantics.

A small test topology (1 s visibility, 0.3 s batching windows, two receives before the DLQ, two stream retries);
stand-in handlers decide per record whether to succeed, report a failure or raise. The runtime's timers
follow its manual clock, which starts on a fixed date far from the wall clock: a message held back
returns when a test moves the clock past its visibility timeout, never because real time passed, and
AWS's timestamps are the clock's.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from infra.config import HubConfig
from infra.local import pollers
from infra.local.clock import ManualClock
from infra.local.runtime import LocalRuntime
from infra.topology import Function, Queue, SqsTrigger, StreamTrigger, Table, Topology

VISIBILITY_S = 1
# Far from the wall clock, so a time taken from the wall clock instead of the runtime's shows.
START = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
TOPOLOGY = Topology(
    app="orderhub",
    tables=(Table("ledger", partition_key="pk", stream="NEW_AND_OLD_IMAGES", ttl_attribute="expires_at",
                  point_in_time_recovery=False),),
    queues=(Queue("batch", visibility_timeout_s=VISIBILITY_S, max_receive_count=2),
            Queue("work", visibility_timeout_s=VISIBILITY_S, max_receive_count=2),
            Queue("stream-failures", visibility_timeout_s=30, is_dead_letter_only=True)),
    buckets=(), buses=(), topics=(), rules=(), routes=(), schedules=(), subscribers=(),
    functions=(
        # "batch" waits to fill its batch, so records sent together arrive together.
        Function("consumer", "stand-in", timeout_s=1, triggers=(
            SqsTrigger("batch", batch_size=10, max_batching_window_s=0.3), SqsTrigger("work", batch_size=10))),
        Function("streamer", "stand-in", timeout_s=5, triggers=(
            StreamTrigger("ledger", on_failure_queue="stream-failures", batch_size=10,
                          max_batching_window_s=0.3, max_retry_attempts=2),)),
    ),
)


class Recorder:
    """What the stand-in handlers saw, keyed by a per-test tag so tests sharing the runtime stay apart."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sqs_calls: list[list[dict]] = []
        self.stream_calls: list[tuple[list[dict], bool]] = []  # (records, succeeded)
        self.failed_once: set[str] = set()

    def consumer(self, event: dict, context) -> dict:
        records = event["Records"]
        with self.lock:
            self.sqs_calls.append(records)
        failures = []
        for r in records:
            body, receives = json.loads(r["body"]), r["attributes"]["ApproximateReceiveCount"]
            if body["mode"] == "raise-first" and receives == "1":
                raise RuntimeError("transient failure")
            if body["mode"] == "poison" or (body["mode"] == "fail-first" and receives == "1"):
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}

    def streamer(self, event: dict, context) -> dict:
        records, failures = event["Records"], []
        try:
            for r in records:
                image = r["dynamodb"].get("NewImage") or r["dynamodb"]["OldImage"]
                mode, pk = image["mode"]["S"], image["pk"]["S"]
                if mode == "poison" and r["eventName"] != "REMOVE":
                    raise RuntimeError(f"cannot publish {pk}")
                if mode == "fail-once" and pk not in self.failed_once:
                    self.failed_once.add(pk)
                    failures.append({"itemIdentifier": r["dynamodb"]["SequenceNumber"]})
        except RuntimeError:
            self.stream_calls.append((records, False))
            raise
        self.stream_calls.append((records, True))
        return {"batchItemFailures": failures}

    def bodies(self, tag: str) -> list[tuple[int, str]]:
        """(id, receive count) of every delivery of the tag's messages, in delivery order."""
        return [(json.loads(r["body"])["id"], r["attributes"]["ApproximateReceiveCount"])
                for call in self.sqs_calls for r in call if json.loads(r["body"])["tag"] == tag]

    def stream_deliveries(self, tag: str, succeeded: bool) -> list[list[str]]:
        out = []
        for records, ok in self.stream_calls:
            keys = [k for k in (r["dynamodb"]["Keys"]["pk"]["S"] for r in records) if k.startswith(tag)]
            if ok == succeeded and keys:
                out.append(keys)
        return out


def past_the_visibility_timeout(runtime: LocalRuntime) -> None:
    """Move the clock past the visibility timeout of what was received so far, and let the runtime work."""
    runtime.clock.advance(VISIBILITY_S + 1)
    runtime.wait_until_idle()


@pytest.fixture(scope="module")
def stack():
    recorder = Recorder()
    clock = ManualClock(START)
    config = HubConfig(stage="itpollers", ops_token="test-ops-token-0123456789")
    with LocalRuntime(config, port=0, clock=clock, topology=TOPOLOGY, prewarm=False, timers_follow_clock=True,
                      handler_overrides={"consumer": recorder.consumer, "streamer": recorder.streamer}) as runtime:
        yield runtime, recorder


@pytest.fixture
def aws(stack):
    runtime, _ = stack
    return lambda service: boto3.client(service, endpoint_url=runtime.endpoint_url, region_name=runtime.region)


def send(aws, runtime, queue: str, tag: str, modes: list[str]) -> None:
    entries = [{"Id": str(i), "MessageBody": json.dumps({"tag": tag, "id": i, "mode": mode}),
                "MessageAttributes": {"source": {"DataType": "String", "StringValue": "test"}}}
               for i, mode in enumerate(modes)]
    for i in range(0, len(entries), 10):
        aws("sqs").send_message_batch(QueueUrl=runtime.resources.queue_urls[queue], Entries=entries[i:i + 10])


def depth(aws, runtime, queue: str) -> int:
    attrs = aws("sqs").get_queue_attributes(QueueUrl=runtime.resources.queue_urls[queue], AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_sqs_records_have_the_lambda_event_shape(stack, aws):
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    send(aws, runtime, "work", tag, ["ok"])
    runtime.wait_until_idle()
    record = next(r for call in recorder.sqs_calls for r in call if tag in r["body"])
    assert set(record) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                           "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion"}
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == runtime.resources.queue_arns["work"]
    assert record["awsRegion"] == runtime.region
    assert {"ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"] == {"source": {"stringValue": "test", "stringListValues": [],
                                                      "binaryListValues": [], "dataType": "String"}}


def test_a_partial_batch_failure_deletes_only_the_successes(stack, aws):
    # Given five messages sent together, the third failing on its first delivery
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    send(aws, runtime, "batch", tag, ["ok", "ok", "fail-first", "ok", "ok"])
    # When the runtime has worked through them, before and after the failed one's visibility timeout
    runtime.wait_until_idle()
    assert recorder.bodies(tag)[5:] == [], "held back until its visibility timeout, not retried at once"
    past_the_visibility_timeout(runtime)
    # Then the first batch held all five, the four successes were never redelivered,
    # and the failure was retried alone and then deleted
    deliveries = recorder.bodies(tag)
    assert sorted(deliveries[:5]) == [(0, "1"), (1, "1"), (2, "1"), (3, "1"), (4, "1")]
    assert deliveries[5:] == [(2, "2")]
    assert depth(aws, runtime, "batch") == 0 and depth(aws, runtime, "batch-dlq") == 0


def test_a_raised_error_deletes_nothing(stack, aws):
    # Given a batch whose handler raises on the first delivery
    runtime, recorder = stack
    tag, errors_before = uuid.uuid4().hex, runtime.errors["consumer"]
    send(aws, runtime, "batch", tag, ["ok", "raise-first"])
    runtime.wait_until_idle()
    past_the_visibility_timeout(runtime)
    # Then every message of it comes back, including the one that was fine
    assert sorted(recorder.bodies(tag)) == [(0, "1"), (0, "2"), (1, "1"), (1, "2")]
    assert runtime.errors["consumer"] == errors_before + 1  # logged and counted, not swallowed
    assert depth(aws, runtime, "batch") == 0


def test_a_poison_message_lands_in_the_dlq_after_max_receive_count(stack, aws):
    # Given a message that always fails, on a queue with maxReceiveCount 2
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    send(aws, runtime, "work", tag, ["poison"])
    dlq = runtime.resources.queue_urls["work-dlq"]
    # When it has been received and failed maxReceiveCount times, and its visibility timeout passed again
    runtime.wait_until_idle()
    past_the_visibility_timeout(runtime)
    past_the_visibility_timeout(runtime)
    parked = aws("sqs").receive_message(QueueUrl=dlq, MessageAttributeNames=["All"],
                                        VisibilityTimeout=0).get("Messages")
    # Then SQS's redrive moved it: the handler saw it exactly maxReceiveCount times and the DLQ holds it intact
    assert recorder.bodies(tag) == [(0, "1"), (0, "2")]
    (message,) = parked
    assert json.loads(message["Body"]) == {"tag": tag, "id": 0, "mode": "poison"}
    assert message["MessageAttributes"]["source"]["StringValue"] == "test"
    aws("sqs").purge_queue(QueueUrl=dlq)


def put(aws, runtime, items: list[tuple[str, str]], **extra) -> None:
    table = runtime.resources.tables["ledger"]
    with_items = [{"PutRequest": {"Item": {"pk": {"S": pk}, "mode": {"S": mode},
                                           **{k: {"N": str(v)} for k, v in extra.items()}}}} for pk, mode in items]
    aws("dynamodb").batch_write_item(RequestItems={table: with_items})


def test_stream_records_have_the_lambda_event_shape(stack, aws):
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    written_at = runtime.clock.now()
    put(aws, runtime, [(f"{tag}-a", "ok")])
    runtime.wait_until_idle()
    record = next(r for records, _ in recorder.stream_calls for r in records
                  if r["dynamodb"]["Keys"]["pk"]["S"] == f"{tag}-a")
    assert record["eventName"] == "INSERT" and record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == runtime.resources.stream_arns["ledger"]
    assert record["awsRegion"] == runtime.region
    ddb = record["dynamodb"]
    assert ddb["NewImage"] == {"pk": {"S": f"{tag}-a"}, "mode": {"S": "ok"}} and "OldImage" not in ddb
    assert ddb["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert isinstance(ddb["SequenceNumber"], str) and isinstance(ddb["SizeBytes"], int)
    # Epoch seconds, as Lambda sends, of when the runtime's clock says the item was written
    assert ddb["ApproximateCreationDateTime"] == int(written_at.timestamp())


def test_a_reported_stream_failure_retries_from_that_record(stack, aws):
    # Given three writes in one batch; the middle one fails once (reported, not raised)
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    put(aws, runtime, [(f"{tag}-a", "ok"), (f"{tag}-b", "fail-once"), (f"{tag}-c", "ok")])
    runtime.wait_until_idle()
    # Then the retry starts at the failed record: a is not delivered again, b and c are
    assert recorder.stream_deliveries(tag, True) == [[f"{tag}-a", f"{tag}-b", f"{tag}-c"], [f"{tag}-b", f"{tag}-c"]]
    assert depth(aws, runtime, "stream-failures") == 0


def test_a_failing_stream_record_is_isolated_then_sent_to_the_on_failure_queue(stack, aws):
    # Given three writes in one batch, the middle one always making the handler raise
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    put(aws, runtime, [(f"{tag}-a", "ok"), (f"{tag}-b", "poison"), (f"{tag}-c", "ok")])
    failures = runtime.resources.queue_urls["stream-failures"]
    # When the runtime bisects the batch and exhausts the retries (max_retry_attempts=2)
    runtime.wait_until_idle()
    (message,) = aws("sqs").receive_message(QueueUrl=failures).get("Messages")
    # Then the records around it went through, in order, each in a successful invocation once
    assert recorder.stream_deliveries(tag, True) == [[f"{tag}-a"], [f"{tag}-c"]]
    # And the bad record alone was tried 1 + 2 times before it was described to the on-failure queue
    assert recorder.stream_deliveries(tag, False).count([f"{tag}-b"]) == 3
    record = json.loads(message["Body"])
    info = record["DDBStreamBatchInfo"]
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    stamped = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    assert abs(stamped - runtime.clock.now()) < timedelta(seconds=1)  # the runtime's clock, as AWS's
    assert record["requestContext"]["functionArn"] == runtime.function_arn("streamer")
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["streamArn"] == runtime.resources.stream_arns["ledger"] and info["shardId"].startswith("shardId-")
    poisoned = next(r for records, _ in recorder.stream_calls for r in records
                    if r["dynamodb"]["Keys"]["pk"]["S"] == f"{tag}-b")
    assert info["startSequenceNumber"] == poisoned["dynamodb"]["SequenceNumber"]
    aws("sqs").purge_queue(QueueUrl=failures)


def test_ttl_expiry_deletes_items_and_streams_a_service_remove(stack, aws):
    # Given an item expiring in a minute and one expiring tomorrow, on the runtime's manual clock
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    now = int(runtime.clock.now().timestamp())
    put(aws, runtime, [(f"{tag}-soon", "ok")], expires_at=now + 60)
    put(aws, runtime, [(f"{tag}-later", "ok")], expires_at=now + 86400)
    runtime.wait_until_idle()
    # When two minutes pass
    runtime.clock.advance(120)
    runtime.wait_until_idle()
    # Then only the expired item is gone, and its REMOVE carries DynamoDB's service identity
    table = runtime.resources.tables["ledger"]

    def get(pk: str) -> dict | None:
        return aws("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}}).get("Item")

    assert get(f"{tag}-soon") is None and get(f"{tag}-later") is not None
    removes = [r for records, _ in recorder.stream_calls for r in records
               if r["eventName"] == "REMOVE" and r["dynamodb"]["Keys"]["pk"]["S"].startswith(tag)]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in removes] == [f"{tag}-soon"]
    assert removes[0]["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def test_wait_until_idle_returns_only_after_the_work_is_done(stack, aws):
    runtime, recorder = stack
    tag = uuid.uuid4().hex
    send(aws, runtime, "work", tag, ["ok"] * 25)
    runtime.wait_until_idle()
    assert sorted(i for i, _ in recorder.bodies(tag)) == list(range(25))
    assert depth(aws, runtime, "work") == 0


def test_stopping_wakes_pollers_out_of_their_idle_wait(monkeypatch):
    # Given pollers that, idle, would wait an hour before polling again, and have begun that wait
    monkeypatch.setattr(pollers, "IDLE_BACKOFF_S", (3600.0,))
    config = HubConfig(stage="itstop", ops_token="test-ops-token-0123456789")
    runtime = LocalRuntime(config, port=0, topology=TOPOLOGY, prewarm=False,
                           handler_overrides={"consumer": lambda e, c: None, "streamer": lambda e, c: None}).start()
    runtime.wait_until_idle()
    # When the runtime stops (it joins each poller for at most 10 s)
    runtime.stop()
    # Then every poller thread has ended: stop() woke them rather than waiting out the hour
    assert not [t for t in threading.enumerate() if t.name.startswith("poller-") and "itstop" in t.name]
