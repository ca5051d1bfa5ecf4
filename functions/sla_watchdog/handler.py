"""SLA watchdog (EXC-1..2): order changes (SQS sla-events) arm timers; the sla-watch schedule fires them.

Scheduled every 5 minutes with `{"schedule": "sla-watch", "scheduled_time": ...}`: the run's "now" is
the scheduled time, so a late or retried invocation judges the instant it was meant for. See
`orderhub.exceptions.watchdog` for what a run does.
"""

# ruff: noqa: I001 - Powertools batch first, before pydantic (see status_mapper/handler.py).
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

import json
from datetime import datetime
from typing import Any

from orderhub import settings
from orderhub.alerts import Alert, send_alerts
from orderhub.bus.domain_events import OrderChange
from orderhub.clock import SystemClock
from orderhub.exceptions.model import ExceptionRules
from orderhub.exceptions.watchdog import Watchdog, arm, arming_floor
from orderhub.observability import lambda_entry, logger, metrics
from orderhub.store.exceptions import DynamoExceptionStore
from orderhub.store.orders import DynamoOrderStore
from orderhub.store.sla_timers import DynamoTimerStore

processor = BatchProcessor(event_type=EventType.SQS)
_clock = SystemClock()
_orders = DynamoOrderStore()
_exceptions = DynamoExceptionStore()
_timers = DynamoTimerStore()


class _Batch:
    """What the records of the invocation in progress share: the rules and the earliest slot for timers."""

    rules: ExceptionRules
    floor: datetime
    armed = 0


def record_handler(record: Any) -> None:
    change = OrderChange.model_validate(json.loads(record.body)["detail"])
    _Batch.armed += len(arm(change, _Batch.rules, _timers, _Batch.floor))


def _rules() -> ExceptionRules:
    return ExceptionRules.model_validate(settings.exceptions_settings())


def _arm(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    _Batch.rules, _Batch.armed = _rules(), 0
    _Batch.floor = arming_floor(_timers, _clock.now())
    try:
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    finally:
        metrics.add_metric(name="SlaTimersArmed", unit="Count", value=_Batch.armed)
        logger.info("timers armed", extra={"records": len(event["Records"]), "timers": _Batch.armed})


def _queue(alerts: list[Alert]) -> None:
    send_alerts(alerts)


def _watch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    scheduled = event.get("scheduled_time")
    now = datetime.fromisoformat(scheduled) if scheduled else _clock.now()
    watchdog = Watchdog(_orders, _exceptions, _timers, _rules(), _queue, settings.business_tz(),
                        time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    result = watchdog.run(now)
    for name, ids in (("raised", result.raised), ("escalated", result.escalated), ("resolved", result.resolved)):
        metrics.add_metric(name=f"Exceptions_{name}", unit="Count", value=len(ids))
        for exception_id in ids:
            logger.info(f"exception {name}", extra={"exception_id": exception_id})
    (logger.warning if result.behind else logger.info)("sla watch", extra=result.as_log())
    return result.as_log()


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    if "Records" in event:
        return _arm(event, context)
    return _watch(event, context)
