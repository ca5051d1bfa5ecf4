"""Scheduled every 5 minutes: queue backlog and DLQ depth as metrics, and one summary log line."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from orderhub import settings
from orderhub.aws import client
from orderhub.observability import lambda_entry, logger

_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
               "ApproximateNumberOfMessagesDelayed"]


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
    parked = {n: q["visible"] for n, q in queues.items() if n.endswith("-dlq") and q["visible"]}
    summary = {"schedule": event.get("schedule"), "scheduled_time": event.get("scheduled_time"),
               "queues": queues, "dead_letters": parked}
    (logger.warning if parked else logger.info)("hub health", extra=summary)
    return summary
