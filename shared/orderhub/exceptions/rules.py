"""The detection rules (EXC-1) on an order's facts: a `Finding` when the condition holds, else a `Clear`.

The same functions serve three purposes:

- arming: each domain event (`OrderChange`) yields the timers of the rules that hold for it,
  due at `Finding.due_at`; a pure function of the event, so any delivery order, with duplicates,
  arms the same timers;
- firing: when a timer is due the rule is checked again on the order as stored now, and an
  exception is raised only if it still holds and is due;
- clearing: an open exception whose rule no longer holds is resolved, with `Clear.reason` as note.

A condition is about the facts only; the thresholds decide `due_at`. A held order (risk hold)
is not late to ship: its hold is the exception, and when the hold is released the next order
change arms the shipping timers again (already due: they fire at the next run).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from orderhub.bus.domain_events import LedgerEntry, OrderChange, ledger_entries
from orderhub.exceptions.model import ExceptionRules, Rule, Timer, compact_instant, plus_minutes
from orderhub.lifecycle.machine import PRESALE_HOLD, effective_hold
from orderhub.lifecycle.statuses import FulfillmentStatus, LogisticsStatus, OrderStatus, PaymentStatus
from orderhub.models.order import Milestones, MoneyKind, MoneyState, Order
from orderhub.money import format_minor


@dataclass(frozen=True)
class Facts:
    """What the rules read, from a stored order or from a domain event about it."""

    order_id: str
    channel: str
    status: OrderStatus
    payment_status: PaymentStatus
    fulfillment_status: FulfillmentStatus
    logistics_status: LogisticsStatus
    hold: str  # why it is ON_HOLD ("" when it is not), presale included
    hold_since: str  # when the hold was last reported (UTC ISO)
    skus: tuple[str, ...]
    lines_since: str  # when the lines were last reported
    milestones: Milestones
    currency: str = ""
    total_amount: int = 0  # what the order's details say is payable
    payment_confirmed: bool = False  # the ledger holds a confirmed payment
    ledger: tuple[LedgerEntry, ...] = ()  # the order's money movements as they stand


def facts_of_order(order: Order) -> Facts:
    held = order.status is OrderStatus.ON_HOLD
    changed = order.updated_in_hub_at or order.last_event_time
    return Facts(
        order_id=order.order_id, channel=order.channel, status=order.status, payment_status=order.payment_status,
        fulfillment_status=order.fulfillment_status, logistics_status=order.logistics_status,
        hold=effective_hold(order) if held else "",
        hold_since=order.hold_stamp.at if order.hold_stamp is not None else changed,
        skus=tuple(line.sku for line in order.lines),
        lines_since=order.details_stamp.at if order.details_stamp is not None else changed,
        milestones=order.milestones, currency=order.currency, total_amount=order.total_amount,
        payment_confirmed=order.payment_confirmed, ledger=ledger_entries(order))


def facts_of_change(change: OrderChange) -> Facts:
    held = change.status is OrderStatus.ON_HOLD
    return Facts(
        order_id=change.order_id, channel=change.channel, status=change.status,
        payment_status=change.payment_status, fulfillment_status=change.fulfillment_status,
        logistics_status=change.logistics_status, hold=change.hold_reason if held else "",
        hold_since=change.occurred_at, skus=tuple(line.sku for line in change.lines),
        lines_since=change.occurred_at, milestones=change.milestones, currency=change.currency,
        total_amount=change.total_amount, payment_confirmed=change.payment_confirmed, ledger=change.ledger)


@dataclass(frozen=True)
class Finding:
    rule: Rule
    since: str  # when the condition began (UTC ISO)
    due_at: str  # when it becomes an exception
    episode: str  # which occurrence: part of the exception key
    detail: dict[str, str]


@dataclass(frozen=True)
class Clear:
    reason: str  # why the rule does not hold: the note of an automatic resolution


Check = Finding | Clear

ENDED = frozenset({OrderStatus.CANCELLED, OrderStatus.CLOSED})
WENT_OUT = frozenset({FulfillmentStatus.PARTIALLY_SHIPPED, FulfillmentStatus.SHIPPED, FulfillmentStatus.DELIVERED})
COMING_BACK = frozenset({LogisticsStatus.REJECTED, LogisticsStatus.RETURNING, LogisticsStatus.RETURNED})


def _went_out(f: Facts) -> Clear | None:
    m = f.milestones
    if f.fulfillment_status not in WENT_OUT:
        return None
    if m.outbound_at:
        return Clear(f"left the warehouse at {m.outbound_at}")
    if m.picked_up_at:
        return Clear(f"collected by the carrier at {m.picked_up_at}")
    return Clear(f"delivered at {m.delivered_at or m.completed_at}")


def _ended(f: Facts) -> Clear | None:
    return Clear(f"order {f.status.value.lower()}") if f.status in ENDED else None


def _held(f: Facts) -> Clear | None:
    return Clear(f"order on hold: {f.hold}") if f.hold else None


def _payment_unconfirmed(f: Facts, rules: ExceptionRules) -> Check:
    """Reported paid, and no confirmed payment in the ledger this long after (EXC-1): the provider's
    callback never came (a platform's own paid fact books its payment at once)."""
    paid_at = f.milestones.paid_at
    if paid_at is None:
        return Clear("not paid")
    if f.payment_confirmed:
        return Clear("payment confirmed in the ledger")
    if f.payment_status is PaymentStatus.REFUNDED:
        return Clear("payment refunded in full")
    return Finding(Rule.PAYMENT_UNCONFIRMED, paid_at, plus_minutes(paid_at, rules.payment_unconfirmed_after_min),
                   compact_instant(paid_at), {"paid_at": paid_at})


def _confirmed(f: Facts, kind: MoneyKind) -> list[LedgerEntry]:
    return [e for e in f.ledger if e.kind is kind and e.state is MoneyState.CONFIRMED]


def _amount(amount: int, currency: str) -> str:
    return format_minor(amount, currency)


def _paid_twice(f: Facts, rules: ExceptionRules) -> Check:
    """A second confirmed payment for one order (the classic "paid twice"), while the money kept is more
    than the order's payable: refund the surplus."""
    payments = _confirmed(f, MoneyKind.PAYMENT)
    if len(payments) < 2:
        return Clear("one payment" if payments else "no payment")
    kept = sum(e.amount for e in payments) - sum(e.amount for e in _confirmed(f, MoneyKind.REFUND))
    payable = f.total_amount or min(e.amount for e in payments)
    if kept <= payable:
        return Clear("the surplus payment was refunded" if kept < sum(e.amount for e in payments)
                     else "the payments add up to the order's amount")
    second = payments[1]
    return Finding(Rule.PAID_TWICE, second.occurred_at, second.occurred_at, compact_instant(second.occurred_at), {
        "transactions": ", ".join(f"{e.provider} {e.reference}" for e in payments)[:500],
        "paid": _amount(sum(e.amount for e in payments), second.currency),
        "payable": _amount(payable, second.currency),
        "suggested_refund": f"{_amount(kept - payable, second.currency)} to {second.provider} {second.reference}"})


def _paid_after_close(f: Facts, rules: ExceptionRules) -> Check:
    """Money confirmed at or after the order was cancelled (the payment-timeout race), not refunded."""
    cancelled = f.milestones.cancelled_at
    if cancelled is None:
        return Clear("not cancelled")
    late = [e for e in _confirmed(f, MoneyKind.PAYMENT) if e.occurred_at >= cancelled]
    if not late:
        return Clear("no payment after the cancellation")
    refunded = sum(e.amount for e in _confirmed(f, MoneyKind.REFUND))
    late_amount = sum(e.amount for e in late)
    if refunded >= late_amount:
        return Clear("the late payment was refunded")
    first = late[0]
    return Finding(Rule.PAID_AFTER_CLOSE, first.occurred_at, first.occurred_at, compact_instant(first.occurred_at), {
        "cancelled_at": cancelled, "paid_at": first.occurred_at,
        "transactions": ", ".join(f"{e.provider} {e.reference}" for e in late)[:500],
        "suggested_refund": f"{_amount(late_amount - refunded, first.currency)} to {first.provider} {first.reference}"})


def _amount_mismatch(f: Facts, rules: ExceptionRules) -> Check:
    """A payment provider's confirmed amount is not what the order says is payable (callback amount !=
    order amount; Alipay and WeChat Pay both tell merchants to check it). A platform's own payment is its
    own figure for its own order: not checked here."""
    payments = [e for e in _confirmed(f, MoneyKind.PAYMENT) if e.provider != f.channel]
    if not payments:
        return Clear("no provider payment")
    if not f.total_amount:
        return Clear("the order's amount is not known yet")
    if f.payment_status is PaymentStatus.DEPOSIT_PAID:
        return Clear("presale: the deposit is in, the balance is due")
    paid = sum(e.amount for e in payments)
    wrong_currency = [e for e in payments if f.currency and e.currency != f.currency]
    if paid == f.total_amount and not wrong_currency:
        return Clear("the payments match the order's amount")
    if len(payments) > 1 and all(e.amount == f.total_amount for e in payments):
        return Clear("each payment is the order's amount: paid twice, not a mismatch")
    last = payments[-1]
    return Finding(Rule.AMOUNT_MISMATCH, last.occurred_at, last.occurred_at, compact_instant(last.occurred_at), {
        "paid": ", ".join(_amount(e.amount, e.currency) for e in payments)[:200],
        "payable": _amount(f.total_amount, f.currency or last.currency),
        "transactions": ", ".join(f"{e.provider} {e.reference}" for e in payments)[:500]})


def _refund_without_payment(f: Facts, rules: ExceptionRules) -> Check:
    """More confirmed refunds than confirmed payments. A refund callback can overtake its payment's, so it
    is an exception only when the payment has not come this long after (the unconfirmed threshold)."""
    refunds = _confirmed(f, MoneyKind.REFUND)
    if not refunds:
        return Clear("no refund")
    paid = sum(e.amount for e in _confirmed(f, MoneyKind.PAYMENT))
    refunded = sum(e.amount for e in refunds)
    if refunded <= paid:
        return Clear("the refunds are covered by payments")
    first = refunds[0]
    return Finding(Rule.REFUND_WITHOUT_PAYMENT, first.occurred_at,
                   plus_minutes(first.occurred_at, rules.payment_unconfirmed_after_min),
                   compact_instant(first.occurred_at), {
                       "refunded": _amount(refunded, first.currency), "paid": _amount(paid, first.currency),
                       "refunds": ", ".join(f"{e.provider} {e.reference}" for e in refunds)[:500]})


def _not_shipped(f: Facts, rules: ExceptionRules) -> Check:
    paid_at = f.milestones.paid_at
    if paid_at is None:
        return Clear("not paid")
    cleared = _went_out(f) or _ended(f) or _held(f)
    if cleared:
        return cleared
    detail = {"paid_at": paid_at, "fulfillment_status": f.fulfillment_status.value}
    if f.milestones.ship_requested_at:
        detail["ship_requested_at"] = f.milestones.ship_requested_at
    return Finding(Rule.NOT_SHIPPED, paid_at, plus_minutes(paid_at, rules.not_shipped_after_min),
                   compact_instant(paid_at), detail)


def _no_outbound(f: Facts, rules: ExceptionRules) -> Check:
    requested = f.milestones.ship_requested_at
    if requested is None:
        return Clear("no ship request")
    cleared = _went_out(f) or _ended(f) or _held(f)
    if cleared:
        return cleared
    return Finding(Rule.NO_OUTBOUND, requested, plus_minutes(requested, rules.no_outbound_after_min),
                   compact_instant(requested), {"ship_requested_at": requested})


def _shipped_after_cancel(f: Facts, rules: ExceptionRules) -> Check:
    m = f.milestones
    if m.cancelled_at is None:
        return Clear("not cancelled")
    went = [t for t in (m.outbound_at, m.picked_up_at) if t]
    if not went:
        return Clear("nothing left the warehouse")
    out = min(went)
    if f.logistics_status in COMING_BACK:
        return Clear(f"parcel coming back: {f.logistics_status.value.lower()}")
    since = max(m.cancelled_at, out)
    return Finding(Rule.SHIPPED_AFTER_CANCEL, since, since, compact_instant(since),
                   {"cancelled_at": m.cancelled_at, "went_out_at": out})


def _unknown_sku(f: Facts, rules: ExceptionRules) -> Check:
    if not rules.known_skus:
        return Clear("no catalogue configured")
    cleared = _ended(f)
    if cleared:
        return cleared
    unknown = sorted(set(f.skus) - rules.known_skus)
    if not unknown:
        return Clear("every SKU is in the catalogue")
    digest = hashlib.sha256("\x1f".join(unknown).encode()).hexdigest()[:12]
    return Finding(Rule.UNKNOWN_SKU, f.lines_since, f.lines_since, f"sku-{digest}",
                   {"unknown_skus": ", ".join(unknown)[:500]})


def _risk_hold(f: Facts, rules: ExceptionRules) -> Check:
    if f.status is not OrderStatus.ON_HOLD or not f.hold:
        return Clear("hold released")
    if f.hold == PRESALE_HOLD:
        return Clear("presale: waiting for the balance, a normal hold")
    return Finding(Rule.RISK_HOLD, f.hold_since, f.hold_since, compact_instant(f.hold_since),
                   {"hold_reason": f.hold[:200]})


_RULES = {
    Rule.PAYMENT_UNCONFIRMED: _payment_unconfirmed,
    Rule.NOT_SHIPPED: _not_shipped,
    Rule.NO_OUTBOUND: _no_outbound,
    Rule.SHIPPED_AFTER_CANCEL: _shipped_after_cancel,
    Rule.UNKNOWN_SKU: _unknown_sku,
    Rule.RISK_HOLD: _risk_hold,
    Rule.PAID_TWICE: _paid_twice,
    Rule.PAID_AFTER_CLOSE: _paid_after_close,
    Rule.AMOUNT_MISMATCH: _amount_mismatch,
    Rule.REFUND_WITHOUT_PAYMENT: _refund_without_payment,
}


def check(rule: Rule, facts: Facts, rules: ExceptionRules) -> Check:
    return _RULES[rule](facts, rules)


def findings(facts: Facts, rules: ExceptionRules) -> list[Finding]:
    return [found for rule in Rule if isinstance(found := check(rule, facts, rules), Finding)]


def timers_for_change(change: OrderChange, rules: ExceptionRules) -> list[Timer]:
    """The timers one domain event arms: each rule that holds for it, at its due time. Pure."""
    return [Timer(change.order_id, found.rule, found.due_at) for found in findings(facts_of_change(change), rules)]
