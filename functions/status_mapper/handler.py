"""SQS intake -> canonical orders. Each message is one webhook; failures are reported per message."""

# ruff: noqa: I001 - order matters: Powertools' batch module builds its pydantic parser models
# (~0.4 s of cold start) only when pydantic is already imported, so it is imported first.
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

from typing import Any

from orderhub.clock import SystemClock
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.observability import lambda_entry, logger, metrics
from orderhub.store.orders import DynamoOrderStore

processor = BatchProcessor(event_type=EventType.SQS)
_store = DynamoOrderStore()
_clock = SystemClock()


def record_handler(record: Any) -> None:
    message = IntakeMessage.model_validate_json(record.body)
    for result in map_message(message, _store, _clock):
        metrics.add_metric(name=f"Events_{result.outcome}", unit="Count", value=1)
        logger.info("event mapped", extra={"channel": message.channel, "order_id": result.order_id,
                                           "outcome": result.outcome, "status_before": result.status_before,
                                           "status_after": result.status_after})


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
