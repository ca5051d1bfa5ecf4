"""What the dispatcher tells people: a subscriber failing, and messages parked in its DLQ.

Collected over one invocation and sent as one alert per problem (counted), never one per
message; the notifier then keeps it to one per problem per window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from orderhub.alerts import Alert, send_alerts
from orderhub.dispatch.delivery import DeliveryResult


class DeliveryAlerts:
    def __init__(self, send: Callable[[list[Alert]], int] = send_alerts) -> None:
        self._send = send
        self._pending: list[Alert] = []

    def clear(self) -> None:
        self._pending = []

    def failing(self, subscriber: str, result: DeliveryResult, attempt: int, max_attempts: int) -> None:
        self._pending.append(Alert(
            key=f"delivery-failing:{subscriber}",
            title=f"Deliveries to {subscriber} are failing",
            text=(f"Last answer: {result.reason} (attempt {attempt} of {max_attempts}). Messages are retried "
                  f"with backoff; after {max_attempts} attempts they are parked in sub-{subscriber}-dlq."),
            severity="warning", at=_now()))

    def parked(self, subscriber: str, dlq: str, result: DeliveryResult, attempt: int) -> None:
        self._pending.append(Alert(
            key=f"dead-letters:{dlq}",
            title=f"Domain events for {subscriber} parked in {dlq}",
            text=(f"Given up after {attempt} attempt(s): {result.reason}. Inspect with `orderhub dlq show {dlq}`; "
                  f"once {subscriber} is fixed, `orderhub dlq redrive {dlq}` (the same Idempotency-Keys are sent)."),
            severity="critical", at=_now()))

    def flush(self, logger: Any, metrics: Any) -> None:
        """Queue the invocation's alerts. Failing to queue them never fails the deliveries themselves:
        the DLQ alarms still fire; the miss is logged and counted."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            sent = self._send(pending)
        except Exception as exc:  # AlertsNotQueued, botocore errors, no network: the same answer
            logger.error("alerts not queued", extra={"error": f"{type(exc).__name__}: {exc}", "alerts": len(pending)})
            metrics.add_metric(name="AlertsNotQueued", unit="Count", value=len(pending))
            return
        metrics.add_metric(name="AlertsQueued", unit="Count", value=sent)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
