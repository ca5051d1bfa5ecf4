"""What the dispatcher tells people: a subscriber whose pushes fail, and what it parked in the DLQ.

Everything wrong with one subscriber is one problem (`delivery:<subscriber>`): failed attempts,
messages parked, and (from hub_health) a DLQ still holding them. The dispatcher sends one alert
per subscriber per invocation, with the counts; the notifier keeps it to one per window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orderhub.alerts import Alert, send_alerts
from orderhub.outbound_http import DeliveryResult

SUBSCRIBER_QUEUE_PREFIX = "sub-"


def problem_key(subscriber: str) -> str:
    return f"delivery:{subscriber}"


def subscriber_of_queue(queue: str) -> str | None:
    """`sub-wms` or `sub-wms-dlq` -> `wms`; None for a queue that is not a subscriber's."""
    if not queue.startswith(SUBSCRIBER_QUEUE_PREFIX):
        return None
    return queue.removeprefix(SUBSCRIBER_QUEUE_PREFIX).removesuffix("-dlq")


@dataclass
class _Tally:
    failed: int = 0
    parked: int = 0
    last: str = ""
    attempt: int = 0
    max_attempts: int = 0


@dataclass
class DeliveryAlerts:
    send: Callable[[list[Alert]], int] = send_alerts
    _tallies: dict[str, _Tally] = field(default_factory=dict)

    def clear(self) -> None:
        self._tallies = {}

    def failing(self, subscriber: str, result: DeliveryResult, attempt: int, max_attempts: int) -> None:
        tally = self._tallies.setdefault(subscriber, _Tally())
        tally.failed += 1
        tally.last, tally.attempt, tally.max_attempts = result.reason, attempt, max_attempts

    def parked(self, subscriber: str, result: DeliveryResult, attempt: int) -> None:
        tally = self._tallies.setdefault(subscriber, _Tally())
        tally.failed += 1
        tally.parked += 1
        tally.last, tally.attempt = result.reason, attempt

    def alerts(self) -> list[Alert]:
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        out = []
        for subscriber, t in self._tallies.items():
            dlq = f"{SUBSCRIBER_QUEUE_PREFIX}{subscriber}-dlq"
            lines = [f"{t.failed} push(es) to **{subscriber}** failed; last answer: {t.last}."]
            if t.parked:
                lines.append(f"{t.parked} event(s) gave up after {t.attempt} attempts and wait in **{dlq}**: "
                             f"`orderhub dlq show {dlq}`, then, once {subscriber} is fixed, "
                             f"`orderhub dlq redrive {dlq}` (the same Idempotency-Keys are sent).")
            else:
                lines.append(f"They are retried with backoff (attempt {t.attempt} of {t.max_attempts}); after the "
                             f"last they are parked in {dlq}.")
            out.append(Alert(key=problem_key(subscriber),
                             title=f"Deliveries to {subscriber} failing" + (", events parked" if t.parked else ""),
                             text="\n".join(lines), severity="critical" if t.parked else "warning",
                             count=t.failed, at=now))
        return out

    def flush(self, logger: Any, metrics: Any) -> None:
        """Queue the invocation's alerts. Failing to queue them never fails the deliveries themselves:
        the DLQ alarms still fire; the miss is logged and counted."""
        pending = self.alerts()
        self._tallies = {}
        if not pending:
            return
        try:
            sent = self.send(pending)
        except Exception as exc:  # AlertsNotQueued, botocore errors, no network: the same answer
            logger.error("alerts not queued", extra={"error": f"{type(exc).__name__}: {exc}", "alerts": len(pending)})
            metrics.add_metric(name="AlertsNotQueued", unit="Count", value=len(pending))
            return
        metrics.add_metric(name="AlertsQueued", unit="Count", value=sent)
