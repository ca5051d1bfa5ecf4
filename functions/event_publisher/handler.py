"""Orders table stream (the outbox) -> domain events on the bus. Failed records are retried from the stream."""

# ruff: noqa: I001 - Powertools batch first, before pydantic (see status_mapper/handler.py).
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from typing import Any

from orderhub import settings
from orderhub.bus.domain_events import events_for_stream_record
from orderhub.bus.publisher import EventBridgePublisher
from orderhub.observability import lambda_entry, metrics

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
_publisher: EventBridgePublisher | None = None


def _bus() -> EventBridgePublisher:
    global _publisher
    if _publisher is None:
        _publisher = EventBridgePublisher(settings.env("EVENT_BUS_NAME"))
    return _publisher


def record_handler(record: Any) -> None:
    entries = events_for_stream_record(record.raw_event)
    if entries:
        _bus().publish(entries)
        metrics.add_metric(name="DomainEventsPublished", unit="Count", value=len(entries))


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
