"""`orderhub dlq list|redrive` against a running local runtime: nothing lost, nothing duplicated."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from pathlib import Path

import boto3
import pytest

from infra.cli.main import main
from infra.config import DEFAULT_CONFIG_PATH, load_config
from infra.local.clock import ManualClock
from infra.local.runtime import LocalRuntime

STAGE = "itcli"


class Intake:
    """Stand-in status_mapper: records every message it consumes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.consumed: list[tuple[str, dict]] = []

    def __call__(self, event: dict, context) -> dict:
        with self.lock:
            self.consumed += [(r["body"], r["messageAttributes"]) for r in event["Records"]]
        return {"batchItemFailures": []}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The committed config under its own stage, so this module's queues are its own.
    path = Path(tmp_path_factory.mktemp("config")) / "hub.toml"
    path.write_text(re.sub(r'(?m)^stage = .*$', f'stage = "{STAGE}"', DEFAULT_CONFIG_PATH.read_text()))
    intake = Intake()
    # A manual clock that no test moves: no scheduled function starts by itself in the middle of a test.
    with LocalRuntime(load_config(path), port=0, prewarm=False, batching_windows=False, clock=ManualClock(),
                      handler_overrides={"status_mapper": intake}) as runtime:
        yield runtime, intake, path


def sqs(runtime):
    return boto3.client("sqs", endpoint_url=runtime.endpoint_url, region_name=runtime.region)


def park(runtime, count: int, start: int = 0) -> list[str]:
    """Messages as they sit in the intake DLQ after failing: a body and attributes each."""
    bodies = []
    for n in range(start, start + count):
        body = json.dumps({"channel": "mall", "event_id": f"evt-{n}", "text": "订单 ✓"})
        sqs(runtime).send_message(QueueUrl=runtime.resources.queue_urls["intake-dlq"], MessageBody=body,
                                  MessageAttributes={"channel": {"DataType": "String", "StringValue": "mall"},
                                                     "raw": {"DataType": "Binary", "BinaryValue": bytes([n % 256])}})
        bodies.append(body)
    return bodies


def depth(runtime, queue: str) -> int:
    attrs = sqs(runtime).get_queue_attributes(QueueUrl=runtime.resources.queue_urls[queue], AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_list_shows_every_dlq_with_depth_and_age(stack, capsys):
    # Given three messages parked in the intake DLQ
    runtime, _, config = stack
    park(runtime, 3, start=1000)
    # When an operator lists the DLQs through the endpoint of the running runtime
    assert main(["dlq", "list", "--config", str(config), "--endpoint-url", runtime.endpoint_url]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    # Then every DLQ of the stage is there, and the stream's failure queue too (redriven from the stream)
    queues = runtime.topology.queues
    assert set(rows) == {q.name if q.is_dead_letter_only else q.dlq_name for q in queues}
    # (the age is whatever time passed since they were parked: its form, not its size)
    assert rows["intake-dlq"][1] == "3" and re.fullmatch(r"\d+(\.\d)?[smhd]", rows["intake-dlq"][2])
    assert rows["intake-dlq"][3] == "intake"
    assert rows["sub-wms-dlq"][1:3] == ["0", "-"]
    assert rows["publisher-failures"][3:] == ["orders-stream", "(re-read", "within", "24", "h)"]
    # And looking did not hide the messages from a redrive
    assert depth(runtime, "intake-dlq") == 3
    assert main(["dlq", "redrive", "intake-dlq", "--config", str(config)]) == 0
    runtime.wait_until_idle()
    capsys.readouterr()


def test_redrive_moves_everything_back_once_with_attributes(stack, capsys):
    # Given 25 messages parked in the intake DLQ (more than one receive batch)
    runtime, intake, config = stack
    bodies = park(runtime, 25)
    before = len(intake.consumed)
    # When an operator redrives 10, then the rest (endpoint from AWS_ENDPOINT_URL this time)
    assert main(["dlq", "redrive", "intake-dlq", "--max", "10", "--config", str(config)]) == 0
    assert "moved 10, failed 0" in capsys.readouterr().out
    assert depth(runtime, "intake-dlq") == 15
    assert main(["dlq", "redrive", f"orderhub-{STAGE}-intake-dlq", "--config", str(config)]) == 0
    assert "moved 15, failed 0" in capsys.readouterr().out
    runtime.wait_until_idle()
    # Then the consumer got every message exactly once, body and attributes intact, and both queues are empty
    consumed = intake.consumed[before:]
    assert sorted(body for body, _ in consumed) == sorted(bodies)
    by_body = dict(consumed)
    for n, body in enumerate(bodies):
        attributes = by_body[body]
        assert attributes["channel"]["stringValue"] == "mall"
        assert attributes["raw"]["binaryValue"] == base64.b64encode(bytes([n])).decode()
    assert depth(runtime, "intake-dlq") == 0 and depth(runtime, "intake") == 0


def test_redrive_refuses_queues_it_cannot_redrive(stack, capsys):
    runtime, _, config = stack
    args = ["--config", str(config), "--endpoint-url", runtime.endpoint_url]
    assert main(["dlq", "redrive", "intake", *args]) == 2
    assert main(["dlq", "redrive", "no-such-dlq", *args]) == 2


def test_show_describes_each_parked_message_and_leaves_it_parked(stack, capsys):
    # Given a domain event a subscriber refused, parked with its reason, and an intake message
    runtime, _, config = stack
    args = ["--config", str(config), "--endpoint-url", runtime.endpoint_url]
    event = {"detail-type": "OrderStatusChanged", "source": "orderhub.orders",
             "detail": {"event_id": "e-77", "order_id": "oh_x", "channel": "mall", "channel_order_id": "M77",
                        "status": "PAID"}}
    sqs(runtime).send_message(QueueUrl=runtime.resources.queue_urls["sub-wms-dlq"], MessageBody=json.dumps(event),
                              MessageAttributes={"reason": {"DataType": "String",
                                                            "StringValue": "HTTP 422: permanent, not retried"}})
    # When an operator shows the DLQ
    assert main(["dlq", "show", "sub-wms-dlq", *args]) == 0
    out = capsys.readouterr().out
    # Then it says what the event is and why it was parked, without dumping the body
    assert "OrderStatusChanged event e-77 of order oh_x (mall M77), status PAID" in out
    assert "reason: HTTP 422: permanent, not retried" in out and '"detail-type"' not in out
    # And the whole body only when asked; the message is still there for a redrive
    assert main(["dlq", "show", "sub-wms-dlq", "--body", *args]) == 0
    assert '"detail-type": "OrderStatusChanged"' in capsys.readouterr().out
    assert depth(runtime, "sub-wms-dlq") == 1
    assert main(["dlq", "show", "intake", *args]) == 2  # a work queue is not shown as a DLQ
    capsys.readouterr()


def test_purge_asks_for_the_queue_name_first(stack, capsys, monkeypatch):
    runtime, _, config = stack
    args = ["--config", str(config), "--endpoint-url", runtime.endpoint_url]
    park(runtime, 2, start=2000)
    # When the operator answers anything but the queue's name, nothing is deleted
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["dlq", "purge", "intake-dlq", *args]) == 1
    assert depth(runtime, "intake-dlq") == 2
    # When they type it, every message goes
    monkeypatch.setattr("builtins.input", lambda prompt: "intake-dlq")
    assert main(["dlq", "purge", "intake-dlq", *args]) == 0
    assert "2 message(s) deleted" in capsys.readouterr().out
    assert depth(runtime, "intake-dlq") == 0
    # And --yes skips the question (scripts); SQS allows one purge of a queue a minute, said plainly
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked despite --yes"))
    assert main(["dlq", "purge", "intake-dlq", "--yes", *args]) == 1
    assert "one purge a minute" in capsys.readouterr().err
    sqs(runtime).send_message(QueueUrl=runtime.resources.queue_urls["imports-dlq"], MessageBody="{}")
    assert main(["dlq", "purge", "imports-dlq", "--yes", *args]) == 0
    assert depth(runtime, "imports-dlq") == 0


def test_publisher_failures_are_shown_as_stream_batches_and_redriven_from_the_stream(stack, capsys):
    # Given an order written to the orders table, and Lambda's on-failure record of its stream batch
    from unit.mall_events import created

    from orderhub.channels.mall import CHANNEL
    from orderhub.lifecycle.machine import apply_event
    from orderhub.store.orders import order_to_item

    runtime, _, config = stack
    args = ["--config", str(config), "--endpoint-url", runtime.endpoint_url]

    def client(service: str):
        return boto3.client(service, endpoint_url=runtime.endpoint_url, region_name=runtime.region)

    (event,) = CHANNEL.parse(json.dumps(created()).encode())
    order, _ = apply_event(None, event)
    client("dynamodb").put_item(TableName=runtime.resources.tables["orders"], Item=order_to_item(order))
    arn = runtime.resources.stream_arns["orders"]
    streams = client("dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    sequence = streams.get_records(ShardIterator=iterator)["Records"][-1]["dynamodb"]["SequenceNumber"]
    record = {"requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
              "responseContext": {"statusCode": 200, "functionError": "Unhandled"}, "version": "1.0",
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
              "DDBStreamBatchInfo": {"shardId": shard["ShardId"], "startSequenceNumber": sequence,
                                     "endSequenceNumber": sequence, "batchSize": 1, "streamArn": arn}}
    sqs(runtime).send_message(QueueUrl=runtime.resources.queue_urls["publisher-failures"],
                              MessageBody=json.dumps(record))
    # When an operator shows the queue, it says which batch failed and how long the stream keeps it
    assert main(["dlq", "show", "publisher-failures", *args]) == 0
    out = capsys.readouterr().out
    assert "stream batch of 1 record(s) Lambda gave up on (RetryAttemptsExhausted" in out
    assert f"sequence {sequence}..{sequence}" in out
    assert re.search(r"on the stream for about 2[34]\.\dh more: redrive it before then", out)
    # When they redrive it, the batch's domain events (created, its first status) are queued to publish again
    assert main(["dlq", "redrive", "publisher-failures", *args]) == 0
    assert "2 domain event(s) queued to publish again, 0 record(s) left parked" in capsys.readouterr().out
    runtime.wait_until_idle()
    # Then the publisher took them from the queue, and nothing is parked
    assert depth(runtime, "publisher-failures") == depth(runtime, "unpublished") == 0
    assert depth(runtime, "unpublished-dlq") == 0
