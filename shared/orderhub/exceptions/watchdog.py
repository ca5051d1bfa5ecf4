"""The SLA watchdog: domain events arm timers; every 5 minutes due timers fire, exceptions are raised,
cleared ones resolved, breached ones escalated, and owners and supervisors alerted.

Arming (`arm`): each order change yields the timers of the rules that hold for it (`rules`), put in
the slot they fall due in, or, when that slot is already behind the watchdog's watermark, in the
watermark's slot: the next run reads it (before any run, the first batch creates the watermark at
its own slot: `arming_floor`). Writing a timer twice rewrites one item.

A scheduled run (`Watchdog.run`, now = the schedule's time):

1. fires every slot from the watermark up to now (a missed run is caught up, never skipped; at most
   `MAX_SLOTS_PER_RUN` per run), checking each due timer's rule on the order as stored now. The
   watermark then moves to the slot before now's: the last two slots are read again next time, so a
   timer written while a run read its slot is not lost;
2. raises an exception only if the rule still holds and is due, and no exception of that order
   and rule is unresolved; its key is the rule and the occurrence (`Finding.episode`), so re-running
   raises nothing twice. A rule that became due later than its timer (a changed threshold) is armed again;
3. sweeps every unresolved exception: the cause cleared -> resolved by the watchdog with a note
   saying what cleared it; past its SLA deadline -> escalated once (a conditional write);
4. alerts: one message per rule to the owner's route for exceptions not yet told, one per rule to
   the supervisor route for escalations not yet told; each exception is marked told after the
   messages are queued, so a failed send is repeated by the next run (at least once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from orderhub.alerts import Alert
from orderhub.bus.domain_events import OrderChange
from orderhub.clock import utc_iso
from orderhub.exceptions.model import (
    RULE_TYPE,
    SLOT,
    WATCHDOG,
    ExceptionNotFound,
    ExceptionRecord,
    ExceptionRules,
    Rule,
    Timer,
    WrongState,
    exception_key,
    plus_minutes,
    slot_of,
)
from orderhub.exceptions.rules import Clear, Finding, check, facts_of_order, timers_for_change
from orderhub.models.order import Order
from orderhub.store.exceptions import ExceptionStore, unresolved
from orderhub.store.sla_timers import TimerStore

MAX_SLOTS_PER_RUN = 288  # one day of slots: a longer outage is caught up over several runs
INITIAL_LOOKBACK = timedelta(hours=6)  # a first run that finds no watermark (no timer armed yet) reads this far
SWEEP_RESERVE_S = 20.0  # stop firing slots with this much time left: the sweep needs it
MARGIN_S = 5.0  # stop sweeping with this much left (the rest is swept next run)
EXAMPLES_PER_ALERT = 5


class OrderReader(Protocol):
    def get_order(self, order_id: str) -> Order | None: ...


AlertSink = Callable[[list[Alert]], object]


def timer_floor(watermark: datetime | None, now: datetime) -> datetime:
    """The earliest slot a new timer may go in: the one the next scheduled run reads first."""
    return watermark if watermark is not None else slot_of(now)


def arming_floor(timers: TimerStore, now: datetime) -> datetime:
    """The floor for the timers of one batch of domain events. Before any run, the first batch sets
    the watermark to its own slot, so the first run reads from where the first timers are."""
    mark = timers.watermark()
    return mark if mark is not None else timers.start(slot_of(now), now)


def place(timers: Iterable[Timer], floor: datetime) -> list[tuple[datetime, Timer]]:
    return [(max(slot_of(timer.due), floor), timer) for timer in timers]


def arm(change: OrderChange, rules: ExceptionRules, timers: TimerStore, floor: datetime) -> list[Timer]:
    """Arm the timers of one domain event; returns them."""
    armed = timers_for_change(change, rules)
    if armed:
        timers.put(place(armed, floor))
    return armed


@dataclass
class WatchResult:
    now: str
    slots_read: int = 0
    timers_fired: int = 0
    rearmed: int = 0
    raised: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    alerts: int = 0
    watermark: str = ""
    behind: bool = False  # time or the slot bound ran out: the next run continues

    def as_log(self) -> dict[str, object]:
        return {"now": self.now, "slots_read": self.slots_read, "timers_fired": self.timers_fired,
                "rearmed": self.rearmed, "raised": len(self.raised), "resolved": len(self.resolved),
                "escalated": len(self.escalated), "alerts": self.alerts, "watermark": self.watermark,
                "behind": self.behind}


class Watchdog:
    def __init__(self, orders: OrderReader, exceptions: ExceptionStore, timers: TimerStore, rules: ExceptionRules,
                 send_alerts: AlertSink, business_tz: str = "Asia/Shanghai",
                 time_left: Callable[[], float] = lambda: math.inf) -> None:
        self.orders, self.exceptions, self.timers, self.rules = orders, exceptions, timers, rules
        self._send = send_alerts
        self._tz = ZoneInfo(business_tz)
        self._time_left = time_left
        self._read: dict[str, Order | None] = {}

    def run(self, now: datetime) -> WatchResult:
        self._read = {}  # each run reads each order at most once
        result = WatchResult(now=utc_iso(now))
        due = self._fire_slots(now, result)
        raised = self._raise(due, now, result)
        self._sweep(raised, now, result)
        return result

    def _order(self, order_id: str) -> Order | None:
        if order_id not in self._read:
            self._read[order_id] = self.orders.get_order(order_id)
        return self._read[order_id]

    def _fire_slots(self, now: datetime, result: WatchResult) -> dict[str, set[Rule]]:
        mark = self.timers.watermark()
        current = slot_of(now)
        slot = mark if mark is not None else current - INITIAL_LOOKBACK
        due: dict[str, set[Rule]] = {}
        while slot <= current and result.slots_read < MAX_SLOTS_PER_RUN and self._time_left() > SWEEP_RESERVE_S:
            for timer in self.timers.due_in(slot):
                if timer.due <= now:
                    due.setdefault(timer.order_id, set()).add(timer.rule)
                    result.timers_fired += 1
            slot += SLOT
            result.slots_read += 1
        result.behind = slot <= current
        target = min(slot, current - SLOT)
        if mark is None or target > mark:
            self.timers.advance(target, now)
            mark = target
        result.watermark = utc_iso(mark)
        return due

    def _raise(self, due: dict[str, set[Rule]], now: datetime, result: WatchResult) -> list[ExceptionRecord]:
        raised: list[ExceptionRecord] = []
        rearm: list[Timer] = []
        for order_id in sorted(due):
            order = self._order(order_id)
            if order is None:
                continue
            facts = facts_of_order(order)
            known: list[ExceptionRecord] | None = None
            for rule in sorted(due[order_id]):
                found = check(rule, facts, self.rules)
                if isinstance(found, Clear):
                    continue
                if found.due_at > utc_iso(now):  # due later than its timer said: watch for it then
                    rearm.append(Timer(order_id, rule, found.due_at))
                    continue
                known = self.exceptions.of_order(order_id) if known is None else known
                key = exception_key(rule, found.episode)
                if any(r.rule is rule and (r.unresolved or r.exception_key == key) for r in known):
                    continue  # one unresolved exception per order and rule; a handled occurrence stays handled
                record = self._record(order, found, now)
                if self.exceptions.create(record):
                    raised.append(record)
                    known.append(record)
                    result.raised.append(record.exception_id)
        if rearm:
            self.timers.put(place(rearm, timer_floor(self.timers.watermark(), now)))
            result.rearmed = len(rearm)
        return raised

    def _record(self, order: Order, found: Finding, now: datetime) -> ExceptionRecord:
        route = self.rules.route(found.rule)
        raised_at = utc_iso(now)
        return ExceptionRecord(
            order_id=order.order_id, exception_key=exception_key(found.rule, found.episode), channel=order.channel,
            channel_order_id=order.channel_order_id, shop_id=order.shop_id, type=RULE_TYPE[found.rule],
            rule=found.rule, owner=route.owner, supervisor=route.supervisor, since=found.since, due_at=found.due_at,
            raised_at=raised_at, sla_deadline=plus_minutes(raised_at, route.sla_minutes), detail=found.detail)

    def _sweep(self, raised: list[ExceptionRecord], now: datetime, result: WatchResult) -> None:
        at = utc_iso(now)
        records = {r.exception_id: r for r in unresolved(self.exceptions)}
        records.update({r.exception_id: r for r in raised})  # the index may not show them yet
        tell_owner: list[ExceptionRecord] = []
        tell_supervisor: list[ExceptionRecord] = []
        for record in sorted(records.values(), key=lambda r: (r.sla_deadline, r.exception_id)):
            if self._time_left() < MARGIN_S:
                result.behind = True
                break
            order = self._order(record.order_id)
            verdict = check(record.rule, facts_of_order(order), self.rules) if order else Clear("order not found")
            if isinstance(verdict, Clear):
                try:
                    self.exceptions.resolve(record.order_id, record.exception_key, WATCHDOG,
                                            f"cleared: {verdict.reason}", at)
                    result.resolved.append(record.exception_id)
                except (WrongState, ExceptionNotFound):
                    pass  # resolved by someone meanwhile
                continue
            if record.escalated_at is None and record.sla_deadline <= at:
                escalated = self.exceptions.escalate(record.order_id, record.exception_key, at)
                if escalated is not None:
                    record = escalated
                    result.escalated.append(record.exception_id)
            if record.owner_alerted_at is None:
                tell_owner.append(record)
            if record.escalated_at is not None and record.supervisor_alerted_at is None:
                tell_supervisor.append(record)
        alerts = (self._alerts(tell_owner, at, escalation=False)
                  + self._alerts(tell_supervisor, at, escalation=True))
        if alerts:
            self._send(alerts)
            result.alerts = len(alerts)
        for record in tell_owner:
            self.exceptions.mark_alerted(record.order_id, record.exception_key, "owner_alerted_at", at)
        for record in tell_supervisor:
            self.exceptions.mark_alerted(record.order_id, record.exception_key, "supervisor_alerted_at", at)

    def _alerts(self, records: list[ExceptionRecord], at: str, *, escalation: bool) -> list[Alert]:
        groups: dict[tuple[Rule, str], list[ExceptionRecord]] = {}
        for record in records:
            route = record.supervisor if escalation else record.owner
            groups.setdefault((record.rule, route), []).append(record)
        return [self._alert(rule, route, group, at, escalation) for (rule, route), group in sorted(groups.items())]

    def _alert(self, rule: Rule, route: str, records: list[ExceptionRecord], at: str, escalation: bool) -> Alert:
        kind = RULE_TYPE[rule].value
        n = len(records)
        plural = "s" if n != 1 else ""
        if escalation:
            title = f"SLA breached: {n} {kind} exception{plural} not resolved in time ({rule_text(rule, self.rules)})"
        else:
            title = f"{n} new {kind} exception{plural}: {rule_text(rule, self.rules)}"
        lines = [f"- {r.channel} order {r.channel_order_id}: deadline {self._local(r.sla_deadline)}, "
                 f"{r.state.value}, owner {r.owner}, id `{r.exception_id}`" for r in records[:EXAMPLES_PER_ALERT]]
        if n > EXAMPLES_PER_ALERT:
            lines.append(f"- and {n - EXAMPLES_PER_ALERT} more")
        lines.append(f"See GET /exceptions?type={kind}; acknowledge and resolve there.")
        return Alert(key=f"exception-{'escalated' if escalation else 'raised'}:{rule.value}:{route}", title=title,
                     text="\n".join(lines), route=route, severity="critical" if escalation else "warning",
                     count=n, at=at)

    def _local(self, iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(self._tz).strftime("%Y-%m-%d %H:%M")


def _duration(minutes: int) -> str:
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def rule_text(rule: Rule, rules: ExceptionRules) -> str:
    """What the rule means, in the configured thresholds (alert titles, the report)."""
    payment = _duration(rules.payment_unconfirmed_after_min)
    return {
        Rule.PAYMENT_UNCONFIRMED: f"paid, no payment confirmed in the ledger after {payment}",
        Rule.NOT_SHIPPED: f"paid, not shipped after {_duration(rules.not_shipped_after_min)}",
        Rule.NO_OUTBOUND: f"ship requested, no warehouse outbound after {_duration(rules.no_outbound_after_min)}",
        Rule.SHIPPED_AFTER_CANCEL: "cancelled, yet the goods left the warehouse: intercept the parcel",
        Rule.UNKNOWN_SKU: "order lines with SKUs not in the catalogue",
        Rule.RISK_HOLD: "held by the channel (risk control, account): review",
        Rule.PAID_TWICE: "paid twice: refund the surplus",
        Rule.PAID_AFTER_CLOSE: "paid after the order was cancelled: refund it",
        Rule.AMOUNT_MISMATCH: "the provider's confirmed amount is not the order's",
        Rule.REFUND_WITHOUT_PAYMENT: f"refunded, no payment confirmed after {payment}",
    }[rule]
