"""SQS intake -> canonical orders. Each message is one webhook; failures are reported per message."""

# ruff: noqa: I001 - order matters: Powertools' batch module builds its pydantic parser models
# (~0.4 s of cold start) only when pydantic is already imported, so it is imported first.
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

import logging
from collections import Counter
from typing import Any

from orderhub import settings
from orderhub.clock import SystemClock
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.observability import lambda_entry, logger, metrics
from orderhub.store.health import ChannelHealth
from orderhub.store.ledger import DynamoLedger
from orderhub.store.orders import DynamoOrderStore

processor = BatchProcessor(event_type=EventType.SQS)
_store = DynamoOrderStore()
_ledger = DynamoLedger()  # the payment voucher ledger: records booked before the order lists them
_health = ChannelHealth()
_clock = SystemClock()


_ATTENTION = frozenset({"unmapped", "status_held", "refused", "conflict"})
# Outcomes of the invocation in progress (an execution environment runs one invocation at a time).
_outcomes: Counter[str] = Counter()
_debug = False  # whether per-event debug lines are wanted (read once per invocation)


def record_handler(record: Any) -> None:
    message = IntakeMessage.model_validate_json(record.body)
    for result in map_message(message, _store, _clock, settings.channel_config, _health, _ledger):
        _outcomes[result.outcome] += 1
        if result.outcome in _ATTENTION:
            logger.warning("event needs attention", extra={"channel": message.channel, "order_id": result.order_id,
                                                           "outcome": result.outcome, "status": result.status_after})
        elif _debug:
            logger.debug("event mapped", extra={"order_id": result.order_id, "outcome": result.outcome,
                                                "status_before": result.status_before,
                                                "status_after": result.status_after})


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    global _debug
    _outcomes.clear()
    _debug = logger.log_level <= logging.DEBUG
    _store.start_batch()
    try:
        # No Lambda context: the record handler takes none, and given one Powertools inspects the
        # handler's signature on every batch to see whether to pass it.
        return process_partial_response(event=event, record_handler=record_handler, processor=processor)
    finally:
        _store.end_batch()
        # One metric per outcome and one log line per batch; the per-event record is the order's event log.
        for outcome, count in _outcomes.items():
            metrics.add_metric(name=f"Events_{outcome}", unit="Count", value=count)
        logger.info("batch mapped", extra={"outcomes": dict(_outcomes), "records": len(event.get("Records", []))})
