"""Subscriber queues -> signed HTTP pushes or robot messages; retried with backoff by visibility, then the DLQ."""

# ruff: noqa: I001 - Powertools batch first, before pydantic (see status_mapper/handler.py).
from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

import json
import time
from typing import Any

from orderhub import settings
from orderhub.aws import client
from orderhub.dispatch.alerting import SUBSCRIBER_QUEUE_PREFIX, DeliveryAlerts
from orderhub.dispatch.delivery import SubscriberEndpoint, backoff_delay, deliver
from orderhub.outbound_http import HttpTransport
from orderhub.observability import lambda_entry, logger, metrics

# A subscriber outage fails every record of a batch; that is reported per message (each already
# holds its own backoff), not raised as a function error, which would page for a healthy hub.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_transport = HttpTransport()
_alerts = DeliveryAlerts()


class DeliveryFailed(Exception):
    """The attempt failed and the message will come back after its backoff."""


def _queue_name_of(arn_or_url: str) -> str:
    return arn_or_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _declared_queue(physical: str) -> tuple[str, str]:
    """(declared name, URL) of the queue whose physical name is `physical`."""
    for declared, url in settings.queue_urls().items():
        if _queue_name_of(url) == physical:
            return declared, url
    raise LookupError(f"queue {physical} is not one of this function's queues")


def _endpoint(subscriber: str) -> SubscriberEndpoint:
    doc = settings.subscriber_settings(subscriber)
    secrets = settings.subscriber_secrets(subscriber)
    return SubscriberEndpoint(
        name=subscriber,
        url=secrets.get("endpoint") or doc["endpoint"],  # a robot's URL holds its key: kept with the secrets
        signing_secret=secrets.get("signing_secret", ""),
        backoff_seconds=tuple(doc.get("backoff_seconds", (30, 120, 600, 1800))),
        timeout_s=float(doc.get("timeout_s", 10)),
        connect_timeout_s=float(doc.get("connect_timeout_s", 3)),
        max_attempts=int(doc.get("max_attempts", 5)),
        kind=doc.get("kind", "webhook"),
    )


def record_handler(record: Any) -> None:
    queue, queue_url = _declared_queue(_queue_name_of(record.event_source_arn))
    subscriber = queue.removeprefix(SUBSCRIBER_QUEUE_PREFIX)
    endpoint = _endpoint(subscriber)
    attempt = int(record.attributes.approximate_receive_count)
    bus_event = json.loads(record.body)
    result = deliver(bus_event, endpoint, _transport, int(time.time() * 1000))
    log = {"subscriber": subscriber, "event_id": bus_event["detail"]["event_id"], "attempt": attempt,
           "status": result.status, "reason": result.reason}
    metrics.add_metric(name=f"Deliveries_{result.outcome}", unit="Count", value=1)

    if result.outcome == "delivered":
        logger.info("delivered", extra=log)
        return
    if result.outcome == "rejected":
        # Retrying cannot turn a 4xx into a success: park it now, with the reason, for a person to look at.
        client("sqs").send_message(
            QueueUrl=settings.queue_urls()[f"{queue}-dlq"],
            MessageBody=record.body,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": result.reason},
                "attempts": {"DataType": "Number", "StringValue": str(attempt)},
            },
        )
        _alerts.parked(subscriber, result, attempt)
        logger.error("delivery rejected, parked in DLQ", extra=log)
        return
    # Retry: hold the message back for the backoff, then let SQS hand it out again. After the
    # last attempt it becomes visible at once so SQS moves it to the DLQ on the next receive.
    last = attempt >= endpoint.max_attempts
    delay = 0 if last else backoff_delay(endpoint, attempt)
    client("sqs").change_message_visibility(QueueUrl=queue_url, ReceiptHandle=record.receipt_handle,
                                            VisibilityTimeout=delay)
    if last:
        _alerts.parked(subscriber, result, attempt)
    else:
        _alerts.failing(subscriber, result, attempt, endpoint.max_attempts)
    logger.warning("delivery failed, attempts exhausted" if last else "delivery failed, will retry",
                   extra={**log, "retry_in_s": delay})
    raise DeliveryFailed(result.reason)


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    _alerts.clear()
    try:
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    finally:
        _alerts.flush(logger, metrics)

