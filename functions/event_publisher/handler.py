"""Orders table stream (the outbox) -> domain events on the bus; refused events wait in the `unpublished` queue.

Stream records: events the bus refuses (or cannot be reached for, after botocore's retries) are
sent to the `unpublished` queue and the record counts as done, so one bad moment of the bus
neither blocks the shard nor runs a record into the stream's 24 h retention. Only if that send
fails too does the record fail: Lambda retries it from the stream, then describes the batch in
`publisher-failures` (which `orderhub dlq redrive` reads back from the stream).
`unpublished` messages: published again; a refusal fails the message, SQS retries it and
parks it in `unpublished-dlq` after maxReceiveCount, with an alarm, for `orderhub dlq redrive`.
"""

# ruff: noqa: I001 - Powertools batch first, before pydantic (see status_mapper/handler.py).
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from typing import Any

from orderhub import settings
from orderhub.bus.domain_events import events_for_stream_record
from orderhub.bus.publisher import EventBridgePublisher, PublishError
from orderhub.bus.unpublished import entry_from_body, park
from orderhub.observability import lambda_entry, logger, metrics

stream_processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
# A bus refusing every entry is a reported failure per message, not an error of the function.
unpublished_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
processor = stream_processor  # the name the benchmarks and older tests use
_publisher: EventBridgePublisher | None = None
_queue: Any = None  # SQS client for the unpublished queue, created on first refusal


def _bus() -> EventBridgePublisher:
    global _publisher
    if _publisher is None:
        _publisher = EventBridgePublisher(settings.env("EVENT_BUS_NAME"))
    return _publisher


def _unpublished_queue() -> Any:
    global _queue
    if _queue is None:
        from orderhub.aws import client

        _queue = client("sqs")
    return _queue


def record_handler(record: Any) -> None:
    entries = events_for_stream_record(record.raw_event)
    if not entries:
        return
    try:
        _bus().publish(entries)
    except PublishError as refused:
        # Raises if the queue will not take them: then the stream record fails and is retried.
        park(_unpublished_queue(), settings.env("UNPUBLISHED_QUEUE_URL"), refused.unpublished, str(refused))
        logger.warning("domain events refused by the bus, queued to publish again", extra={
            "reason": str(refused), "event_ids": [e.detail.event_id for e in refused.unpublished]})
        metrics.add_metric(name="DomainEventsUnpublished", unit="Count", value=len(refused.unpublished))
        published = len(entries) - len(refused.unpublished)
    else:
        published = len(entries)
    if published:
        metrics.add_metric(name="DomainEventsPublished", unit="Count", value=published)


def unpublished_handler(record: Any) -> None:
    _bus().publish([entry_from_body(record.body)])  # PublishError fails the message: SQS retries it
    metrics.add_metric(name="DomainEventsRepublished", unit="Count", value=1)


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    records = event.get("Records") or [{}]
    if records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(event=event, record_handler=unpublished_handler,
                                        processor=unpublished_processor, context=context)
    return process_partial_response(event=event, record_handler=record_handler, processor=stream_processor,
                                    context=context)
