"""Alerts: what the hub tells people when something needs them (OUT-2, EXC-2).

Every function that alerts sends `Alert`s to the alerts queue with `send_alerts`, at most one
message per problem per invocation (occurrences are counted, not repeated). The notifier
function throttles them (one alert per problem per window, carrying the count) and delivers
them to the route's WeCom / DingTalk robots and the alarm topic. Producers need no robot
secrets and never wait on a chat service.

Titles and texts go to chat groups: never personal data (no names, phones, addresses).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

SEND_BATCH_MAX = 10
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Alert:
    key: str  # the problem, e.g. "delivery-failing:wms": one alert per key per window
    title: str  # one line
    text: str  # markdown, a few lines: what happened, where, what to do
    route: str = ""  # an alert route (team) of the configuration; "" = the default route
    severity: Severity = "warning"
    count: int = 1  # occurrences this message stands for
    at: str = ""  # UTC ISO time of the latest occurrence
    first_at: str = ""  # UTC ISO time of the earliest occurrence ("" = `at`)
    # Unique per queued message (set by `send_alerts`): the notifier remembers by it which destinations
    # already had this message, so a retried or redriven message is never counted twice.
    id: str = ""
    # False: the alarm topic already has it (a CloudWatch alarm publishes there itself), robots only.
    to_alarm_topic: bool = True

    def body(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str) -> Alert:
        """The alert a queued message holds; fields this version does not know are ignored."""
        return cls.from_document(json.loads(body))

    @classmethod
    def from_document(cls, document: Any) -> Alert:
        """The alert a parsed message body holds (raises TypeError / ValueError when it holds none)."""
        if not isinstance(document, dict):
            raise TypeError("an alert is a JSON object")
        known = {f.name for f in fields(cls)}
        alert = cls(**{k: v for k, v in document.items() if k in known})
        if not alert.key or not isinstance(alert.count, int) or alert.count < 1:
            raise ValueError("an alert needs a key and a count of at least 1")
        return alert


class AlertsNotQueued(RuntimeError):
    """Some alerts could not be put on the alerts queue."""


def merge_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """One alert per key: counts summed, the latest occurrence's wording kept, the earliest occurrence's
    time as `first_at` (first-seen order)."""
    merged: dict[str, Alert] = {}
    for alert in alerts:
        seen = merged.get(alert.key)
        if seen is None:
            merged[alert.key] = alert
        else:
            latest = alert if alert.at >= seen.at else seen
            firsts = [t for t in (seen.first_at or seen.at, alert.first_at or alert.at) if t]
            merged[alert.key] = replace(latest, count=seen.count + alert.count, first_at=min(firsts, default=""),
                                        id="")
    return list(merged.values())


def send_alerts(alerts: Iterable[Alert], *, queue_url: str | None = None, client: Any = None) -> int:
    """Queue the alerts for the notifier (merged by key); returns how many messages were sent."""
    import uuid  # here, not at import: hub_health's cold start is measured

    batch = [alert if alert.id else replace(alert, id=uuid.uuid4().hex) for alert in merge_alerts(alerts)]
    if not batch:
        return 0
    if client is None:
        from orderhub.aws import client as aws_client

        client = aws_client("sqs")
    url = queue_url or os.environ.get("ALERTS_QUEUE_URL", "")
    if not url:
        raise AlertsNotQueued("ALERTS_QUEUE_URL is not set")
    failed: list[str] = []
    for start in range(0, len(batch), SEND_BATCH_MAX):
        chunk = batch[start:start + SEND_BATCH_MAX]
        reply = client.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": alert.body()} for i, alert in enumerate(chunk)])
        failed += [chunk[int(f["Id"])].key for f in reply.get("Failed", [])]
    if failed:
        raise AlertsNotQueued(f"alerts not queued: {failed}")
    return len(batch)
