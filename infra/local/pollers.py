"""Event source mappings, locally: SQS and DynamoDB-stream pollers with Lambda's batch semantics.

SQS (one poller per SqsTrigger): receive up to batch_size messages (waiting up to the
batching window to fill the batch), invoke, then delete only what succeeded. A raised
error deletes nothing; `batchItemFailures` keeps exactly those messages; a malformed
failure list fails the whole batch, as Lambda does. Kept messages come back after their
visibility timeout and moto's redrive moves them to the DLQ after maxReceiveCount: the
poller never moves messages itself, and never touches a visibility a handler changed.

Streams (one poller per StreamTrigger): per shard, in order, from TRIM_HORIZON at start.
A reported failure checkpoints just before it and retries from there; a raised error
splits the batch when bisect is on (a split does not use the retry quota, as in AWS);
after max_retry_attempts retries the batch is described to the on-failure queue and
skipped.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from infra.topology import SqsTrigger, StreamTrigger
from orderhub.bus.stream_range import lambda_binaries

log = logging.getLogger("orderhub.local.pollers")

# Waits between empty polls. Every moto call costs ~5 ms of the runtime's CPU, so an idle poller
# slows down to 1/s; the runtime wakes all pollers whenever an invocation ends (that is when new
# work appears), so the pipeline still hands records on within milliseconds.
IDLE_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
SHARD_REFRESH_S = 10.0
SERVICE_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}

Invoke = Callable[[str, dict], Any]


class _Poller:
    def __init__(self, name: str) -> None:
        self.name = name
        self.busy = False  # polling, or holding records not yet settled
        self.last_empty_poll = 0.0  # monotonic start of the latest poll that found nothing
        self.batches = 0
        self.failed_batches = 0
        self._due: float | None = None  # when records left for a retry become visible again
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"poller-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        idle = 0
        while not self._stop.is_set():
            self._wake.clear()  # before polling: a wake() during the poll triggers one more poll
            started = time.monotonic()
            # Busy for the whole poll, so wait_until_idle never sees records that are taken but unsettled.
            self.busy, worked = True, False
            try:
                worked = self.poll_once()
            except Exception:  # a moto hiccup must not kill the poller; log and back off
                log.exception("%s: poll failed", self.name)
            finally:
                if not worked:
                    self.last_empty_poll = started
                self.busy = False
            if worked:
                idle = 0
                continue
            wait = IDLE_BACKOFF_S[min(idle, len(IDLE_BACKOFF_S) - 1)]
            if self._due is not None:  # be there when failed records return, as Lambda's pollers are
                remaining = self._due - time.monotonic()
                wait = min(wait, max(0.0, remaining))
                if remaining <= wait:
                    self._due = None
            self._wake.wait(wait)
            idle += 1

    def poll_once(self) -> bool:
        raise NotImplementedError

    def _expect(self, at: float) -> None:
        self._due = at if self._due is None else min(self._due, at)


def _failed_ids(result: Any, valid: set[str]) -> set[str] | None:
    """Identifiers reported failed; None when the reply is malformed (Lambda then fails the whole batch)."""
    if not isinstance(result, dict) or not result.get("batchItemFailures"):
        return set()
    failures = result["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    ids = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures]
    if not all(isinstance(i, str) and i in valid for i in ids):
        return None
    return {i for i in ids if isinstance(i, str)}


class SqsPoller(_Poller):
    def __init__(self, function: str, trigger: SqsTrigger, queue_url: str, queue_arn: str, region: str,
                 sqs: Any, invoke: Invoke, batching_window_s: float | None = None,
                 visibility_timeout_s: float = 30.0) -> None:
        super().__init__(f"{function}<-{trigger.queue}")
        self.visibility_timeout_s = visibility_timeout_s
        self.window_s = trigger.max_batching_window_s if batching_window_s is None else batching_window_s
        self.function, self.trigger = function, trigger
        self.queue_url, self.queue_arn, self.region = queue_url, queue_arn, region
        self._sqs, self._invoke = sqs, invoke

    def _receive(self, count: int) -> list[dict]:
        return self._sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=min(count, 10), WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])

    def poll_once(self) -> bool:
        messages = self._receive(self.trigger.batch_size)
        if not messages:
            return False
        window_ends = time.monotonic() + self.window_s
        while len(messages) < self.trigger.batch_size and time.monotonic() < window_ends and not self._stop.is_set():
            more = self._receive(self.trigger.batch_size - len(messages))
            messages += more
            if not more:
                self._stop.wait(0.05)
        # A visibility timeout shorter than the window hands a message out twice: keep its latest receipt.
        self._settle(list({m["MessageId"]: m for m in messages}.values()))
        return True

    def _settle(self, messages: list[dict]) -> None:
        event = {"Records": [self._record(m) for m in messages]}
        self.batches += 1
        # Unless deleted below, these return after the visibility timeout counted from their receive.
        returns_at = time.monotonic() + self.visibility_timeout_s
        try:
            result = self._invoke(self.function, event)
        except Exception:  # logged by the runtime; nothing is deleted, SQS retries
            self.failed_batches += 1
            self._expect(returns_at)
            return
        failed = _failed_ids(result, {m["MessageId"] for m in messages})
        if failed is None:
            log.error("%s: malformed batchItemFailures %r; the whole batch will be retried", self.name, result)
            self.failed_batches += 1
            self._expect(returns_at)
            return
        if failed:
            self.failed_batches += 1
            self._expect(returns_at)
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            chunk = done[i:i + 10]
            reply = self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)])
            for err in reply.get("Failed", []):
                log.error("%s: could not delete a processed message: %s", self.name, err)

    def _record(self, m: dict) -> dict:
        record = {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {k: _lambda_attribute(v) for k, v in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in m:
            record["md5OfMessageAttributes"] = m["MD5OfMessageAttributes"]
        return record


def _lambda_attribute(value: dict) -> dict:
    # Lambda's SQS event spells message attributes in camelCase with binaries base64-encoded.
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


class _Shard:
    def __init__(self, shard_id: str, parent: str | None, iterator_type: str) -> None:
        self.id, self.parent = shard_id, parent
        self.iterator: str | None = None
        self.iterator_type = iterator_type
        self.checkpoint: str | None = None  # sequence number of the last record settled
        self.finished = False


class StreamPoller(_Poller):
    def __init__(self, function: str, trigger: StreamTrigger, stream_arn: str, function_arn: str,
                 on_failure_url: str, region: str, streams: Any, sqs: Any, invoke: Invoke,
                 ttl_deletes: Callable[[str, dict], bool] | None = None,
                 batching_window_s: float | None = None, housekeeping: Callable[[], None] | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        super().__init__(f"{function}<-{trigger.table}-stream")
        self._now = now or (lambda: datetime.now(UTC))  # what stamps an on-failure record: AWS's clock
        self._housekeeping = housekeeping
        self.window_s = trigger.max_batching_window_s if batching_window_s is None else batching_window_s
        self.function, self.trigger = function, trigger
        self.stream_arn, self.function_arn, self.on_failure_url, self.region = (
            stream_arn, function_arn, on_failure_url, region)
        self._streams, self._sqs, self._invoke = streams, sqs, invoke
        self._ttl_deletes = ttl_deletes
        self._shards: dict[str, _Shard] = {}
        self._refreshed = 0.0
        self.discarded_batches = 0
        self._refresh_shards(initial=True)

    def _refresh_shards(self, initial: bool = False) -> None:
        start: str | None = None
        while True:
            kwargs = {"StreamArn": self.stream_arn, **({"ExclusiveStartShardId": start} if start else {})}
            desc = self._streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in desc["Shards"]:
                if shard["ShardId"] not in self._shards:
                    kind = self.trigger.starting_position if initial else "TRIM_HORIZON"
                    self._shards[shard["ShardId"]] = _Shard(shard["ShardId"], shard.get("ParentShardId"), kind)
            start = desc.get("LastEvaluatedShardId")
            if not start:
                break
        self._refreshed = time.monotonic()

    def _iterator(self, shard: _Shard) -> str:
        if shard.iterator is None:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.id}
            if shard.checkpoint is not None:
                kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.checkpoint)
            else:
                kwargs["ShardIteratorType"] = shard.iterator_type
            shard.iterator = self._streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return shard.iterator

    def _get_records(self, shard: _Shard, limit: int) -> list[dict]:
        try:
            reply = self._streams.get_records(ShardIterator=self._iterator(shard), Limit=min(limit, 1000))
        except ClientError as exc:
            shard.iterator = None  # re-position from the checkpoint on the next poll
            if exc.response["Error"]["Code"] == "ExpiredIteratorException":
                return []
            if exc.response["Error"]["Code"] == "TrimmedDataAccessException":
                shard.checkpoint, shard.iterator_type = None, "TRIM_HORIZON"
                return []
            raise
        records = reply.get("Records", [])
        shard.iterator = reply.get("NextShardIterator")
        if shard.iterator is None:
            shard.finished = not records  # a closed shard ends once read to its end
        if self._housekeeping is not None:
            self._housekeeping()
        return records

    def poll_once(self) -> bool:
        if time.monotonic() - self._refreshed > SHARD_REFRESH_S:
            self._refresh_shards()
        worked = False
        for shard in list(self._shards.values()):
            parent = self._shards.get(shard.parent or "")
            if shard.finished or (parent is not None and not parent.finished):
                continue  # children wait for their parent: order per key spans a shard split
            records = self._get_records(shard, self.trigger.batch_size)
            if not records:
                continue
            window_ends = time.monotonic() + self.window_s
            while len(records) < self.trigger.batch_size and time.monotonic() < window_ends \
                    and not self._stop.is_set():
                more = self._get_records(shard, self.trigger.batch_size - len(records))
                records += more
                if not more:
                    self._stop.wait(0.05)
            self._process(shard, [self._record(r) for r in records])
            worked = True
        return worked

    def _record(self, raw: dict) -> dict:
        record = dict(raw)
        ddb = dict(record["dynamodb"])
        created = ddb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):  # Lambda events carry epoch seconds
            ddb["ApproximateCreationDateTime"] = int(created.timestamp())
        for key in ("Keys", "NewImage", "OldImage"):
            if key in ddb:
                ddb[key] = lambda_binaries(ddb[key])
        record.update(dynamodb=ddb, awsRegion=self.region, eventSourceARN=self.stream_arn)
        if record.get("eventName") == "REMOVE" and self._ttl_deletes and \
                self._ttl_deletes(self.trigger.table, ddb["Keys"]):
            record["userIdentity"] = SERVICE_IDENTITY  # what DynamoDB stamps on TTL deletions
        return record

    def _process(self, shard: _Shard, pending: list[dict]) -> None:
        """Settle `pending` in order: retry, split, or discard to the on-failure queue."""
        size, attempts, head = len(pending), 0, None
        while pending and not self._stop.is_set():
            if pending[0]["dynamodb"]["SequenceNumber"] != head:  # progress: a fresh retry quota
                head, attempts, size = pending[0]["dynamodb"]["SequenceNumber"], 0, len(pending)
            batch = pending[:size]
            self.batches += 1
            attempts += 1
            try:
                result = self._invoke(self.function, {"Records": batch})
                failed = _failed_ids(result, {r["dynamodb"]["SequenceNumber"] for r in batch})
                raised = failed is None
            except Exception:  # logged by the runtime
                failed, raised = None, True
            if not raised and not failed:
                pending = pending[len(batch):]
                shard.checkpoint = batch[-1]["dynamodb"]["SequenceNumber"]
                continue
            self.failed_batches += 1
            if failed:
                first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
                if first:
                    shard.checkpoint = batch[first - 1]["dynamodb"]["SequenceNumber"]
                    pending = pending[first:]
                    continue
            elif self.trigger.bisect_batch_on_error and len(batch) > 1:
                size, attempts = (len(batch) + 1) // 2, attempts - 1
                continue
            retries = self.trigger.max_retry_attempts
            if retries >= 0 and attempts > retries:
                self._discard(shard, batch, attempts)
                shard.checkpoint = batch[-1]["dynamodb"]["SequenceNumber"]
                pending = pending[len(batch):]
                continue
            self._stop.wait(min(0.1 * attempts, 1.0))  # Lambda retries promptly, not in a hot loop
        if pending:  # stopped mid-way: re-read from the checkpoint next time
            shard.iterator = None

    def _discard(self, shard: _Shard, batch: list[dict], attempts: int) -> None:
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        record = {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": self.function_arn,
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "DDBStreamBatchInfo": {
                "shardId": shard.id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _arrival(first),
                "approximateArrivalOfLastRecord": _arrival(last),
                "batchSize": len(batch),
                "streamArn": self.stream_arn,
            },
        }
        self._sqs.send_message(QueueUrl=self.on_failure_url, MessageBody=json.dumps(record))
        self.discarded_batches += 1
        log.error("%s: retries exhausted for %d record(s) %s..%s; described in %s", self.name, len(batch),
                  first["SequenceNumber"], last["SequenceNumber"], self.on_failure_url.rsplit("/", 1)[-1])


def _arrival(ddb: dict) -> str:
    return datetime.fromtimestamp(ddb.get("ApproximateCreationDateTime", 0), UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
