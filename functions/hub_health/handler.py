"""Scheduled every 5 minutes: queue backlog and DLQ depth as metrics, one summary log line, and an alert
for every dead-letter queue that holds messages (the notifier keeps it to one per queue per window)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from orderhub import settings
from orderhub.alerts import Alert, send_alerts
from orderhub.aws import client
from orderhub.clock import utc_iso
from orderhub.dispatch.alerting import problem_key, subscriber_of_queue
from orderhub.observability import lambda_entry, logger

_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
               "ApproximateNumberOfMessagesDelayed"]


def dead_letter_alert(queue: str, depth: dict[str, int], at: str) -> Alert:
    """The alert for a DLQ holding messages. A subscriber's DLQ is part of that subscriber's delivery
    problem (the dispatcher alerts under the same key), so people get one alert per subscriber."""
    held = depth["visible"] + depth["in_flight"]
    in_flight = f" ({depth['in_flight']} being read right now)" if depth["in_flight"] else ""
    subscriber = subscriber_of_queue(queue)
    return Alert(
        key=problem_key(subscriber) if subscriber else f"dead-letters:{queue}",
        title=f"Dead letters in {queue}",
        text=(f"Dead-letter queue **{queue}** holds **{held}** message(s){in_flight}: work that failed every "
              f"retry and waits for a person.\n"
              f"- Inspect: `orderhub dlq show {queue}`\n"
              f"- Once the cause is fixed: `orderhub dlq redrive {queue}`"),
        severity="critical", count=1, at=at)


@lambda_entry()
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sqs = client("sqs")
    queues: dict[str, dict[str, int]] = {}
    for name, url in sorted(settings.queue_urls().items()):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_ATTRIBUTES)["Attributes"]
        queues[name] = {"visible": int(attrs["ApproximateNumberOfMessages"]),
                        "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
                        "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"])}
        metric = "DeadLetterDepth" if name.endswith("-dlq") else "QueueBacklog"
        with single_metric(name=metric, unit=MetricUnit.Count, value=queues[name]["visible"],
                           namespace="OrderHub") as m:
            m.add_dimension(name="queue", value=name)
    # A message an operator is reading (`orderhub dlq show`) is still parked.
    parked = {n: q["visible"] + q["in_flight"] for n, q in queues.items()
              if n.endswith("-dlq") and q["visible"] + q["in_flight"]}
    summary = {"schedule": event.get("schedule"), "scheduled_time": event.get("scheduled_time"),
               "queues": queues, "dead_letters": parked}
    (logger.warning if parked else logger.info)("hub health", extra=summary)
    if parked:
        now = utc_iso(datetime.now(UTC))
        # Not caught: if the alerts cannot be queued the hub is broken, and the function's errors say so
        # (the DLQ depth alarms still fire on their own).
        summary["alerts_queued"] = send_alerts(dead_letter_alert(name, queues[name], now) for name in parked)
    return summary
