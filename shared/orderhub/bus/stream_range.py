"""A stream batch Lambda gave up on, read back from the orders table stream.

When event_publisher fails outright on a batch (after its retries), Lambda sends the on-failure
destination a description of it, not its records: the shard, the first and last sequence
number and the stream's ARN (`DDBStreamBatchInfo`). The records stay readable on the stream for
its retention (24 hours in DynamoDB); after that only the orders table and the event log know
what changed, and a replay cannot produce the events (an unchanged order is not written again).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderhub.bus.domain_events import BusEntry

# Empty pages of an open shard are normal; a range that was written is readable well within this.
MAX_EMPTY_PAGES = 50
GONE_CODES = frozenset({"TrimmedDataAccessException", "ResourceNotFoundException", "ExpiredIteratorException"})


class StreamRangeGone(Exception):
    """The records are no longer on the stream (retention passed, or the stream was replaced)."""


@dataclass(frozen=True)
class FailedStreamBatch:
    stream_arn: str
    shard_id: str
    first_sequence: str
    last_sequence: str
    size: int
    failed_at: str
    condition: str

    @classmethod
    def from_record(cls, doc: Any) -> FailedStreamBatch | None:
        """The batch an on-failure destination record describes, or None if `doc` is not one."""
        info = doc.get("DDBStreamBatchInfo") if isinstance(doc, dict) else None
        if not isinstance(info, dict):
            return None
        return cls(stream_arn=info["streamArn"], shard_id=info["shardId"],
                   first_sequence=str(info["startSequenceNumber"]), last_sequence=str(info["endSequenceNumber"]),
                   size=int(info.get("batchSize", 0)), failed_at=str(doc.get("timestamp", "")),
                   condition=str((doc.get("requestContext") or {}).get("condition", "")))

    def describe(self) -> str:
        return (f"stream batch of {self.size} record(s) Lambda gave up on ({self.condition or 'failed'}, "
                f"{self.failed_at}): shard {self.shard_id}, sequence {self.first_sequence}..{self.last_sequence}")


def read_batch(streams: Any, batch: FailedStreamBatch) -> list[dict]:
    """The batch's records in Lambda's event shape (binary values base64), in stream order.

    StreamRangeGone if the stream no longer holds them.
    """
    from botocore.exceptions import ClientError

    first, last = int(batch.first_sequence), int(batch.last_sequence)
    records: list[dict] = []
    try:
        iterator = streams.get_shard_iterator(StreamArn=batch.stream_arn, ShardId=batch.shard_id,
                                              ShardIteratorType="AT_SEQUENCE_NUMBER",
                                              SequenceNumber=batch.first_sequence)["ShardIterator"]
        empty = 0
        while iterator and empty < MAX_EMPTY_PAGES:
            reply = streams.get_records(ShardIterator=iterator, Limit=1000)
            page = reply.get("Records", [])
            empty = 0 if page else empty + 1
            for raw in page:
                sequence = int(raw["dynamodb"]["SequenceNumber"])
                if sequence > last:
                    return records
                if sequence >= first:
                    records.append(_lambda_shape(raw, batch.stream_arn))
            if records and int(records[-1]["dynamodb"]["SequenceNumber"]) == last:
                return records
            iterator = reply.get("NextShardIterator")
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code in GONE_CODES:
            raise StreamRangeGone(f"{code}: the stream no longer holds {batch.shard_id} "
                                  f"{batch.first_sequence}..{batch.last_sequence}") from exc
        raise
    # The end of the range was never reached: rebuilding part of it would pass for all of it.
    raise StreamRangeGone(f"{len(records)} record(s) of {batch.shard_id} {batch.first_sequence}.."
                          f"{batch.last_sequence} found on the stream, not up to the last one")


def events_for_batch(streams: Any, batch: FailedStreamBatch) -> list[BusEntry]:
    """Every domain event the batch's records stand for (some may have been published already:
    their ids are the ones subscribers have, so they are dropped there)."""
    from orderhub.bus.domain_events import events_for_stream_record  # pydantic: only when rebuilding

    return [entry for record in read_batch(streams, batch) for entry in events_for_stream_record(record)]


def _lambda_shape(raw: dict, stream_arn: str) -> dict:
    ddb = dict(raw["dynamodb"])
    ddb.pop("ApproximateCreationDateTime", None)  # a datetime from boto3; the events do not use it
    for key in ("Keys", "NewImage", "OldImage"):
        if key in ddb:
            ddb[key] = lambda_binaries(ddb[key])
    return {**raw, "dynamodb": ddb, "eventSourceARN": stream_arn}


def lambda_binaries(value: Any) -> Any:
    """Stream images as Lambda delivers them: boto3 returns binary attribute values as bytes, Lambda
    hands them over as base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: lambda_binaries(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lambda_binaries(v) for v in value]
    return value
