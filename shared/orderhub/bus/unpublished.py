"""Domain events the bus refused, kept as SQS messages until they are published.

One message per event, its body shaped as the EventBridge event a subscriber queue holds
(`source`, `detail-type`, `detail`), so `orderhub dlq show` describes it as it does a
subscriber's parked event. The event id travels in `detail`: publishing it again later
gives subscribers the same `Idempotency-Key`. Domain events carry no personal data.
"""

from __future__ import annotations

import json
from typing import Any

from orderhub.bus.domain_events import EVENT_SOURCE, PAYMENTS_SOURCE, BusEntry, entry_of

SEND_BATCH_MAX = 10
# The reason is an AWS error summary; bounded so a message attribute never grows with it.
REASON_MAX_CHARS = 256


class ParkingError(RuntimeError):
    """The queue did not take every message: the caller must fail, so that nothing is dropped."""


def message_body(entry: BusEntry) -> str:
    return json.dumps({"source": entry.source, "detail-type": entry.detail_type,
                       "detail": entry.detail.model_dump(mode="json")}, ensure_ascii=False, separators=(",", ":"))


def entry_from_body(body: str) -> BusEntry:
    """The domain event of a parked message (ValueError / ValidationError if it is not one)."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or doc.get("source") not in (EVENT_SOURCE, PAYMENTS_SOURCE):
        raise ValueError("not an orderhub domain event")
    return entry_of(doc["detail-type"], doc["detail"])


def park(sqs: Any, queue_url: str, entries: tuple[BusEntry, ...] | list[BusEntry], reason: str) -> None:
    """Send every entry to the queue, or raise ParkingError (some may have been sent: a second
    attempt sends them again, which subscribers drop by event id)."""
    reason = reason[:REASON_MAX_CHARS] or "unknown"
    for start in range(0, len(entries), SEND_BATCH_MAX):
        chunk = entries[start:start + SEND_BATCH_MAX]
        reply = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": message_body(entry),
             "MessageAttributes": {"reason": {"DataType": "String", "StringValue": reason}}}
            for i, entry in enumerate(chunk)])
        if reply.get("Failed") or len(reply.get("Successful", [])) != len(chunk):
            codes = sorted({f.get("Code", "?") for f in reply.get("Failed", [])})
            raise ParkingError(f"{len(chunk) - len(reply.get('Successful', []))} of {len(chunk)} "
                               f"unpublished events not queued: {codes}")
