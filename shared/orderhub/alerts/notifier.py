"""The notifier: one alert per problem per destination per window, with the count; nothing lost.

For each queued alert and each destination of its route (robots, and the alarm topic if the route
says so), the alert is either
- counted: a window of that (problem, destination) is open, so its count waits in the store, or
- told: no window is open, this invocation opens one (a conditional write: exactly one concurrent
  notifier wins) and sends one message telling this alert's count plus what was counted since the
  last alert. Pending counts leave the store only once the send succeeded.

A failed send releases the claim and fails the record (SQS retries it; after maxReceiveCount it is
parked in the alerts DLQ, which alarms). Destinations it already reached are remembered by the
alert's id, so a retry or a redrive neither counts nor tells them twice. Within one invocation a
destination that failed is not tried again (the rest of the batch fails fast for it instead of
waiting on a dead robot once per record).

Occurrences counted after a window's alert are told by the next alert of that problem, or, when the
problem went quiet, by `digest` (the `alert-digest` schedule), which counts as the window's alert.

Ports: the store (`orderhub.store.alerts`), the HTTP transport, the alarm topic and the clock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from orderhub.alerts import Alert
from orderhub.alerts.message import SNS_MESSAGE_MAX_BYTES, Told, render
from orderhub.alerts.robots import robot_outcome, robot_request, truncate_utf8
from orderhub.clock import Clock, utc_iso
from orderhub.outbound_http import DeliveryResult, Timeouts, Transport
from orderhub.store.alerts import AlertStore, Occurrence, Prior

SNS = "sns"
ROBOT = "robot:"
ROBOT_TIMEOUTS = Timeouts(connect_s=3.0, read_s=5.0)
# Count-or-claim rounds before giving up on a record (each lost round means another notifier just
# opened or released the window; more than a few in a row does not happen outside a test's scheduler).
CLAIM_ROUNDS = 5
STORED_TEXT_MAX_BYTES = 1500  # the words kept for the digest; an item stays near one write unit


@dataclass(frozen=True)
class Destination:
    name: str  # "robot:<robot name>" or "sns"
    kind: str  # wecom | dingtalk | sns
    webhook: str = ""  # holds the robot's key: never logged
    secret: str = ""


@dataclass(frozen=True)
class AlertSettings:
    window_s: int
    default_route: str
    routes: Mapping[str, tuple[str, ...]]  # route -> destination names
    destinations: Mapping[str, Destination]
    business_tz: str = "Asia/Shanghai"

    @classmethod
    def from_documents(cls, settings: Mapping[str, Any], robots: Mapping[str, Mapping[str, str]],
                       business_tz: str) -> AlertSettings:
        """From the `alerts/settings` parameter and the `alerts/robots` secret (infra/config.py)."""
        destinations = {SNS: Destination(SNS, SNS)}
        for name, kind in settings.get("robots", {}).items():
            secret = robots.get(name, {})
            destinations[ROBOT + name] = Destination(ROBOT + name, kind, secret.get("webhook", ""),
                                                     secret.get("secret", ""))
        routes = {name: tuple(ROBOT + r for r in spec.get("robots", ())) + ((SNS,) if spec.get("sns", True) else ())
                  for name, spec in settings.get("routes", {}).items()}
        return cls(window_s=int(settings.get("window_s", 300)), default_route=settings.get("default_route", "ops"),
                   routes=routes, destinations=destinations, business_tz=business_tz)

    def route_of(self, alert: Alert) -> tuple[str, tuple[str, ...]]:
        """(route, its destinations); an unknown route is the default one (a wrong name loses nothing)."""
        route = alert.route if alert.route in self.routes else self.default_route
        return route, self.routes.get(route, ())


class AlarmTopic(Protocol):
    def publish(self, subject: str, message: str) -> None:
        """Raises when the message was not accepted."""


class SnsAlarmTopic:
    """The stage's alarm topic (ALARM_TOPIC_ARN), through the process's SNS client."""

    def __init__(self, topic_arn: str | None = None, client: Any = None) -> None:
        self._topic_arn, self._client = topic_arn, client

    def publish(self, subject: str, message: str) -> None:
        from orderhub.aws import client
        from orderhub.settings import env

        sns = self._client or client("sns")
        sns.publish(TopicArn=self._topic_arn or env("ALARM_TOPIC_ARN"), Subject=subject, Message=message)


class AlertNotDelivered(Exception):
    """Some destinations of the alert could not be told; the record is to be retried."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{d}: {r}" for d, r in sorted(failures.items())))
        self.failures = dict(failures)


@dataclass
class Handled:
    """What became of one queued alert."""

    route: str
    told: dict[str, int] = field(default_factory=dict)  # destination -> the count its message carried
    counted: list[str] = field(default_factory=list)  # destinations whose window was open
    earlier: list[str] = field(default_factory=list)  # reached by an earlier attempt of this alert


@dataclass
class DigestReport:
    told: dict[str, int] = field(default_factory=dict)  # "<problem>#<destination>" -> count told
    failed: dict[str, str] = field(default_factory=dict)  # "<problem>#<destination>" -> reason


def _parse(iso: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return at if at.tzinfo else None


def _pick(times: Iterable[str], latest: bool) -> str:
    parsed = [(at, iso) for iso in times if (at := _parse(iso)) is not None]
    if not parsed:
        return ""
    return (max if latest else min)(parsed)[1]


class Notifier:
    """One invocation's notifier (it remembers which destinations failed in this invocation)."""

    def __init__(self, store: AlertStore, transport: Transport, topic: AlarmTopic, settings: AlertSettings,
                 clock: Clock, *, wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12]) -> None:
        self._store, self._transport, self._topic = store, transport, topic
        self.settings, self._clock, self._wall_ms, self._new_id = settings, clock, wall_ms, new_id
        self.failing: dict[str, str] = {}  # destination -> why its send failed in this invocation
        self._reached: dict[str, frozenset[str]] = {}

    def recall(self, alert_ids: Iterable[str]) -> None:
        """Load, in one read for the batch, which destinations earlier attempts of these alerts reached."""
        ids = [i for i in alert_ids if i]
        self._reached = self._store.recall(ids) if ids else {}

    # ------------------------------------------------------------------------------------------ records

    def handle(self, alert: Alert, record_id: str = "") -> Handled:
        """Count or tell `alert` at each destination of its route; raises AlertNotDelivered if any failed."""
        alert_id = alert.id or record_id
        route, destinations = self.settings.route_of(alert)
        if not alert.to_alarm_topic:
            destinations = tuple(name for name in destinations if name != SNS)
        now = self._clock.now()
        at = alert.at or utc_iso(now)
        occurrence = Occurrence(count=alert.count, first_at=alert.first_at or at, last_at=at, title=alert.title,
                                text=truncate_utf8(alert.text, STORED_TEXT_MAX_BYTES), route=route,
                                severity=alert.severity)
        handled, failures = Handled(route), {}
        earlier = self._reached.get(alert_id, frozenset()) if alert_id else frozenset()
        for name in destinations:
            if name in earlier:
                handled.earlier.append(name)
                continue
            outcome = self._count_or_tell(alert, name, occurrence, now, record_id)
            if isinstance(outcome, int):
                handled.told[name] = outcome
            elif outcome == "counted":
                handled.counted.append(name)
            else:
                failures[name] = outcome
        if failures:
            reached = set(handled.told) | set(handled.counted)
            if reached and alert_id:
                self._store.remember(alert_id, reached, now.timestamp())
            raise AlertNotDelivered(failures)
        return handled

    def _count_or_tell(self, alert: Alert, name: str, occurrence: Occurrence, now: datetime,
                       record_id: str) -> int | str:
        """The count told (int), "counted", or why it failed."""
        now_s = now.timestamp()
        for _ in range(CLAIM_ROUNDS):
            if self._store.count(alert.key, name, occurrence, now_s):
                return "counted"
            if name in self.failing:  # do not open a window only to release it: fail fast
                return f"not tried again in this invocation ({self.failing[name]})"
            prior = self._store.claim(alert.key, name, occurrence, now_s, self.settings.window_s,
                                      f"{record_id or 'alert'}:{self._new_id()}")
            if prior is None:
                continue  # another notifier opened the window just now: count there
            told = Told(key=alert.key, title=alert.title, text=alert.text, severity=alert.severity,
                        count=occurrence.count + prior.pending,
                        first_at=_pick((prior.pending_first, occurrence.first_at), latest=False),
                        last_at=_pick((prior.pending_last, occurrence.last_at), latest=True),
                        telling="more" if prior.pending else "fresh", last_alert_at=prior.last_told_at)
            return self._tell(alert.key, name, prior, told, now)
        return "the window kept changing hands"

    def _tell(self, problem: str, name: str, prior: Prior, told: Told, now: datetime) -> int | str:
        result = self._send(name, told, now)
        if result.outcome == "delivered":
            self._store.confirm(problem, name, prior, told.count, utc_iso(now))
            return told.count
        self._store.release(problem, name, prior)
        self.failing[name] = result.reason
        return result.reason

    # ------------------------------------------------------------------------------------------ digest

    def digest(self, now: datetime) -> DigestReport:
        """Tell every window that closed with occurrences pending (the problem went quiet)."""
        report = DigestReport()
        for due in self._store.due(now.timestamp()):
            slot = f"{due.problem}#{due.destination}"
            if due.destination in self.failing:
                report.failed[slot] = f"not tried again in this run ({self.failing[due.destination]})"
                continue
            prior = self._store.claim(due.problem, due.destination, None, now.timestamp(), self.settings.window_s,
                                      f"digest:{self._new_id()}")
            if prior is None:
                continue  # told meanwhile by an alert of the same problem
            told = Told(key=due.problem, title=prior.title, text=prior.text, severity=prior.severity or "warning",
                        count=prior.pending, first_at=prior.pending_first or prior.pending_last,
                        last_at=prior.pending_last, telling="digest", last_alert_at=prior.last_told_at)
            outcome = self._tell(due.problem, due.destination, prior, told, now)
            if isinstance(outcome, int):
                report.told[slot] = outcome
            else:
                report.failed[slot] = outcome
        return report

    # ------------------------------------------------------------------------------------------ sending

    def _send(self, name: str, told: Told, now: datetime) -> DeliveryResult:
        destination = self.settings.destinations.get(name)
        if destination is None:
            return DeliveryResult("rejected", None, "destination not in the alerts configuration")
        rendered = render(told, now, self.settings.business_tz)
        if destination.kind == SNS:
            try:
                self._topic.publish(rendered.subject, truncate_utf8(rendered.plain, SNS_MESSAGE_MAX_BYTES))
            except Exception as exc:  # throttled, unreachable, denied: the record is retried either way
                return DeliveryResult("retry", None, f"alarm topic: {type(exc).__name__}")
            return DeliveryResult("delivered", None, "ok")
        if not destination.webhook:
            return DeliveryResult("rejected", None, "robot has no webhook in the alerts/robots secret")
        try:
            # DingTalk checks its sign's timestamp against its own clock: always the wall clock here.
            url, body, headers = robot_request(destination.kind, destination.webhook, destination.secret,
                                               rendered.title, rendered.markdown, self._wall_ms())
            reply = self._transport.post(url, body, headers, ROBOT_TIMEOUTS)
        except ValueError as exc:  # an unknown robot kind
            return DeliveryResult("rejected", None, str(exc))
        except OSError as exc:  # refused, reset, DNS, timeout
            return DeliveryResult("retry", None, f"no response: {type(exc).__name__}")
        return robot_outcome(destination.kind, reply)
