"""The alerts queue -> robots and the alarm topic, one per problem per window; every 5 minutes, a digest.

SQS records: each holds one `Alert`, or a CloudWatch alarm's state change put there by EventBridge (told
to the robots as an alert, see orderhub/alerts/alarms.py); a record some destination could not be told is reported as a
batch item failure (SQS retries it, then parks it in the alerts DLQ). The `alert-digest` schedule
tells what was counted and not yet told, at its `scheduled_time`.
"""

# ruff: noqa: I001 - Powertools batch first, before pydantic (see status_mapper/handler.py).
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

import json
from datetime import UTC, datetime
from typing import Any

from orderhub import settings
from orderhub.alerts import Alert
from orderhub.alerts.alarms import alert_from_alarm_event, is_alarm_event
from orderhub.alerts.notifier import AlertSettings, Notifier, SnsAlarmTopic
from orderhub.clock import SystemClock
from orderhub.outbound_http import HttpTransport
from orderhub.observability import lambda_entry, logger, metrics
from orderhub.store.alerts import DynamoAlertStore

# A robot outage fails every record of a batch: reported per record (each keeps its place in the
# retries), not as a function error. The alerts DLQ and its alarm say that alerts are not getting out.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_store = DynamoAlertStore()
_transport = HttpTransport()
_topic = SnsAlarmTopic()
_clock = SystemClock()


def _notifier() -> Notifier:
    config = AlertSettings.from_documents(settings.alerts_settings(), settings.alert_robots(), settings.business_tz())
    return Notifier(_store, _transport, _topic, config, _clock)


NOT_NEWS = "not news"


def _alert(record: dict[str, Any]) -> Alert | str | None:
    """The record's alert; NOT_NEWS for an alarm change nobody needs to hear of; None if unreadable."""
    try:
        document = json.loads(record["body"])
        if is_alarm_event(document):
            return alert_from_alarm_event(document) or NOT_NEWS
        return Alert.from_document(document)
    except (ValueError, TypeError, KeyError):
        return None


def _digest(event: dict[str, Any]) -> dict[str, Any]:
    now = datetime.fromisoformat(event["scheduled_time"]) if event.get("scheduled_time") else _clock.now()
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    report = _notifier().digest(now)
    metrics.add_metric(name="AlertsTold", unit="Count", value=len(report.told))
    summary = {"schedule": event.get("schedule"), "scheduled_time": event.get("scheduled_time"),
               "told": report.told, "failed": report.failed}
    # Not raised: what failed stays pending in the table and the next run tries again.
    (logger.error if report.failed else logger.info)("alert digest", extra=summary)
    return summary


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse | dict[str, Any]:
    if "Records" not in event:
        return _digest(event)
    notifier = _notifier()
    alerts = {r["messageId"]: _alert(r) for r in event["Records"]}
    notifier.recall(alert.id or message_id for message_id, alert in alerts.items() if isinstance(alert, Alert))

    def record_handler(record: Any) -> None:
        alert = alerts.get(record.message_id)
        if alert == NOT_NEWS:
            logger.info("alarm change not told", extra={"message_id": record.message_id})
            return
        if not isinstance(alert, Alert):
            # Unreadable: failed until SQS parks it in the DLQ, where a person can read what was sent.
            logger.error("unreadable alert message", extra={"message_id": record.message_id})
            raise ValueError("unreadable alert message")
        log = {"alert_key": alert.key, "count": alert.count, "message_id": record.message_id,
               "attempt": int(record.attributes.approximate_receive_count)}
        try:
            handled = notifier.handle(alert, record.message_id)
        except Exception as exc:
            metrics.add_metric(name="AlertsNotDelivered", unit="Count", value=1)
            logger.warning("alert not delivered, will retry", extra={**log, "error": str(exc)})
            raise
        if handled.told:
            metrics.add_metric(name="AlertsTold", unit="Count", value=len(handled.told))
            logger.info("alert told", extra={**log, "route": handled.route, "told": handled.told,
                                              "counted": handled.counted})

    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
