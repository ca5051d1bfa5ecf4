"""The convergent order state machine.

Channels deliver at least once and in any order, so applying an event is a merge, not a step:
every event adds facts (when something first happened, the latest snapshot of the details,
each refund by its id) and the statuses are *derived* from the facts. Merging is commutative,
associative and idempotent, so any arrival order, with any duplicates, ends in the order the
events give sorted by the channel's own event time.

Whatever can only be decided by "which came later" uses the channel's event time, ties broken
by event id (a `Stamp`), never the hub's arrival time.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from orderhub.lifecycle.statuses import (
    AFTERSALE_ENDED,
    RESERVED_KINDS,
    STATUS_RANK,
    AftersaleState,
    AftersaleStatus,
    EventKind,
    FulfillmentStatus,
    OrderStatus,
    PaymentStatus,
)
from orderhub.models.order import (
    AftersaleCase,
    AftersaleFact,
    LedgerLine,
    Milestones,
    MoneyKind,
    MoneyState,
    Order,
    OrderEvent,
    OrderLine,
    Package,
    Stamp,
    entry_id,
    record_id,
    updated,
)
from orderhub.payments.ledger import Money, business_date, channel_method, line_of, money, with_lines

_MILESTONE_OF_KIND = {
    EventKind.CREATED: "created_at",
    EventKind.DEPOSIT_PAID: "deposit_paid_at",
    EventKind.PAID: "paid_at",
    EventKind.SHIP_REQUESTED: "ship_requested_at",
    EventKind.OUTBOUND: "outbound_at",
    EventKind.PICKED_UP: "picked_up_at",
    EventKind.DELIVERED: "delivered_at",
    EventKind.COMPLETED: "completed_at",
    EventKind.CANCELLED: "cancelled_at",
}

PRESALE_HOLD = "presale: balance due"

# Fields the hub stamps when it stores an order; they say when the hub wrote, not what happened.
HUB_BOOKKEEPING_FIELDS = frozenset({"version", "created_in_hub_at", "updated_in_hub_at"})


@lru_cache(maxsize=4096)
def hub_order_id(channel: str, channel_order_id: str) -> str:
    """The hub's id for a channel order: derived, so the same order can never become two rows."""
    digest = hashlib.sha256(f"{channel}\x1f{channel_order_id}".encode()).digest()
    return "oh_" + base64.b32encode(digest[:15]).decode("ascii").lower()


@dataclass(frozen=True)
class Transition:
    before: OrderStatus | None
    after: OrderStatus
    # Why the status did not follow the facts, when it did not (it never moves backwards).
    held_back_from: OrderStatus | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after


# Sources that report for the channel their events name, as that channel would: a CSV import is
# the channel's own record (its shop, its holds), unlike a warehouse or a carrier reporting on it.
SPEAKS_FOR_ITS_CHANNEL = frozenset({"import"})


def _newer(stamp: Stamp, than: Stamp | None) -> bool:
    return than is None or stamp.key() > than.key()


def _earliest(current: str | None, candidate: str) -> str:
    return candidate if current is None or candidate < current else current


_RESERVED = frozenset(RESERVED_KINDS)


def refused_kinds(event: OrderEvent) -> tuple[EventKind, ...]:
    """Milestones the event claims but its reporter may not report (ST-4: only wms ships)."""
    if _RESERVED.isdisjoint(event.kinds):  # nearly every event: no reserved milestone claimed
        return ()
    return tuple(k for k in event.kinds if k in RESERVED_KINDS and event.reporter not in RESERVED_KINDS[k])


def carries_facts(event: OrderEvent) -> bool:
    """Whether the event says anything the order keeps (an unmapped code alone says nothing)."""
    return _carries_facts(event, refused_kinds(event))


def _carries_facts(event: OrderEvent, refused: tuple[EventKind, ...]) -> bool:
    kinds = event.kinds
    return (bool(kinds) and (not refused or any(k not in refused for k in kinds)) or bool(event.aftersales)
            or event.hold is not None or event.details is not None or event.payment is not None
            or event.deposit is not None or event.shipment is not None or event.region is not None
            or event.logistics is not None or (event.outbound is not None and EventKind.OUTBOUND not in refused)
            or bool(event.money))


def merge_event(current: Order | None, event: OrderEvent, order_id: str | None = None) -> Order:
    """The order with `event`'s facts merged in (statuses not yet derived). Pure.

    Every fact merges commutatively: milestones keep the earliest time, snapshots the latest
    (event time, event id), after-sale cases the latest report per case (REFUNDED sticks),
    packages accumulate by package id.
    """
    order = current or _new_order(event, order_id)
    update = _merge_update(order, event)
    return updated(order, update) if update else order


def _new_order(event: OrderEvent, order_id: str | None) -> Order:
    return Order(order_id=order_id or event.order_id or hub_order_id(event.channel, event.channel_order_id),
                 channel=event.channel, channel_order_id=event.channel_order_id)


def utc_iso_fast(at: datetime) -> str:
    """`clock.utc_iso` (UTC, milliseconds, truncated), a third cheaper: isoformat with `timespec`
    parses its keyword on every call, so the plain form is cut to size instead."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: every stored time carries its offset")
    iso = at.astimezone(UTC).isoformat()  # ...T10:00:00+00:00, or ...T10:00:00.123456+00:00
    return iso[:23] + iso[26:] if len(iso) == 32 else iso[:19] + ".000+00:00"


# An event's time is converted while it is merged and again when it is logged.
event_iso = lru_cache(maxsize=512)(utc_iso_fast)


def _merge_update(order: Order, event: OrderEvent) -> dict:
    """The fields `event` changes on `order` (facts only; statuses are derived afterwards)."""
    refused = refused_kinds(event)
    if not _carries_facts(event, refused):
        return {}
    at = event_iso(event.event_time)
    stamp = Stamp(at=at, event_id=event.event_id)
    update: dict = {}
    is_own_channel = (event.reporter == order.channel or not order.channel
                      or (event.source in SPEAKS_FOR_ITS_CHANNEL and event.channel == order.channel))

    if event.kinds:
        known = order.milestones
        times = event.milestone_times
        milestones: dict[str, str] = {}
        for kind in event.kinds:
            if kind in refused:
                continue
            field = _MILESTONE_OF_KIND[kind]
            when = times.get(kind) if times else None
            current = getattr(known, field)
            earliest = _earliest(current, event_iso(when) if when is not None else at)
            if earliest != current:
                milestones[field] = earliest
        if milestones:
            update["milestones"] = updated(known, milestones)

    if event.details is not None and _newer(stamp, order.details_stamp):
        d = event.details
        update |= {"currency": d.currency, "total_amount": d.total_amount, "lines": d.lines, "details_stamp": stamp}
        if _newer(stamp, order.region_stamp):
            update |= {"region": d.region, "region_stamp": stamp}
    if event.region is not None and _newer(stamp, update.get("region_stamp", order.region_stamp)):
        update |= {"region": event.region, "region_stamp": stamp}
    if event.payment is not None and _newer(stamp, order.payment_stamp):
        update |= {"payment_transaction_id": event.payment.transaction_id or order.payment_transaction_id,
                   "payment_claim": event.payment.amount, "payment_stamp": stamp}
    if event.deposit is not None and _newer(stamp, order.deposit_stamp):
        update |= {"deposit_amount": event.deposit.amount, "deposit_stamp": stamp}
    if event.shipment is not None and _newer(stamp, order.shipment_stamp):
        update |= {"carrier": event.shipment.carrier, "tracking_no": event.shipment.tracking_no,
                   "shipment_stamp": stamp}
    if event.hold is not None and is_own_channel and _newer(stamp, order.hold_stamp):
        update |= {"hold_reason": event.hold, "hold_stamp": stamp}
    if event.logistics is not None and _newer(stamp, order.logistics_stamp):
        update |= {"logistics_status": event.logistics.state, "logistics_stamp": stamp}
    if event.outbound is not None and EventKind.OUTBOUND not in refused:
        o = event.outbound
        known_package = order.packages.get(o.package_id)
        package = Package(at=at, warehouse=o.warehouse, carrier=o.carrier, tracking_no=o.tracking_no, lines=o.lines)
        # The earliest scan of a package is its outbound; ties broken by content, so any order agrees.
        if known_package is None or (package.at, repr(package)) < (known_package.at, repr(known_package)):
            update["packages"] = {**order.packages, o.package_id: package}
    money_lines = [line_of(fact) for fact in event.money] if event.money else []
    if is_own_channel and (event.payment is not None or event.aftersales):
        money_lines += claimed_lines(order, event, at)
    if money_lines:
        booked = with_lines(order.ledger, money_lines)
        if booked is not None:
            update["ledger"] = booked
    if event.aftersales:
        cases = dict(order.aftersales)
        for fact in event.aftersales:
            cases[fact.case_id] = _merge_case(cases.get(fact.case_id), fact, stamp)
        if cases != order.aftersales:
            update["aftersales"] = cases

    # Provenance is the earliest event by channel time, so it too is independent of arrival order.
    if not order.source_event_id or (at, event.event_id) < (order.source_event_time, order.source_event_id):
        update |= {"source_event_id": event.event_id, "source_event_time": at}
    if not order.shop_id and event.shop_id and is_own_channel:
        update["shop_id"] = event.shop_id
    if at > order.last_event_time:
        update["last_event_time"] = at
    return update


def claimed_lines(order: Order, event: OrderEvent, at: str) -> list[LedgerLine]:
    """The ledger records a channel's own paid and refund facts stand for, where its facts are money (a
    platform collecting on the merchant's behalf, a shop's own gateway; `payments.ledger.channel_method`):
    one payment per channel order (a platform collects once; its payment reference rides along) and one
    refund per refunded after-sale case, each at the time this event gives it. Pure in the event (and the
    order's currency when the event names none), so the set of records does not depend on arrival order."""
    method = channel_method(order.channel or event.channel)
    if method is None:
        return []
    # A refund report often names no currency (Shopify's refunds/create): "" stands for the order's.
    currency = event.details.currency if event.details is not None else ""
    order_ref = (order.channel_order_id or event.channel_order_id)[:64]
    if not order_ref:
        return []
    provider = order.channel or event.channel
    known = order.ledger
    lines = []
    payment = event.payment
    if payment is not None and payment.amount > 0:
        when = event.milestone_times.get(EventKind.PAID) if event.milestone_times else None
        paid_at = event_iso(when) if when is not None else at
        # A snapshot repeats its payment: a record the order holds is not built again.
        if record_id(entry_id(provider, MoneyKind.PAYMENT, order_ref), MoneyState.CONFIRMED, paid_at) not in known:
            lines.append(LedgerLine(
                provider=provider, kind=MoneyKind.PAYMENT, reference=order_ref, state=MoneyState.CONFIRMED,
                amount=payment.amount, currency=currency, method=method, payment_reference=payment.transaction_id,
                merchant_reference=order_ref, occurred_at=paid_at, business_date=business_date(paid_at)))
    for fact in event.aftersales:
        refunded = record_id(entry_id(provider, MoneyKind.REFUND, fact.case_id), MoneyState.CONFIRMED, at)
        if fact.state is AftersaleState.REFUNDED and fact.amount > 0 and refunded not in known:
            lines.append(LedgerLine(
                provider=provider, kind=MoneyKind.REFUND, reference=fact.case_id, state=MoneyState.CONFIRMED,
                amount=fact.amount, currency=currency, method=method, payment_reference=order_ref,
                merchant_reference=order_ref, occurred_at=at, business_date=business_date(at)))
    return lines


def _case_rank(state: AftersaleState, stamp: Stamp) -> tuple[bool, str, str]:
    # Money paid out stays paid out: a REFUNDED report outranks any other report of the case,
    # then the latest report wins. A total order, so merging cases is commutative.
    return (state is AftersaleState.REFUNDED, *stamp.key())


def _merge_case(known: AftersaleCase | None, fact: AftersaleFact, stamp: Stamp) -> AftersaleCase:
    opened = stamp.at if known is None else min(known.opened_at, stamp.at)
    if known is not None and _case_rank(known.state, known.stamp) >= _case_rank(fact.state, stamp):
        return known if known.opened_at == opened else known.model_copy(update={"opened_at": opened})
    return AftersaleCase(state=fact.state, type=fact.type, amount=fact.amount, reason=fact.reason,
                         channel_state=fact.channel_state, stamp=stamp, opened_at=opened)


def _shipped_fully(lines: tuple[OrderLine, ...], packages: dict[str, Package]) -> bool:
    """Whether the packages out of the warehouse cover every line (a package without lines is everything)."""
    if not lines or any(not p.lines for p in packages.values()):
        return True
    shipped: dict[str, int] = {}
    for package in packages.values():
        for packed in package.lines:
            shipped[packed.sku] = shipped.get(packed.sku, 0) + packed.quantity
    needed: dict[str, int] = {}
    for line in lines:
        needed[line.sku] = needed.get(line.sku, 0) + line.quantity
    return all(shipped.get(sku, 0) >= qty for sku, qty in needed.items())


def derive(order: Order) -> Order:
    """Statuses and amounts as the facts say."""
    return order.model_copy(update=_derived(order.__dict__))


def _derived(values: dict, books: Money | None = None) -> dict:
    """The derived fields (statuses, the money) of an order's field values; `books`: the money of their
    ledger, when the caller knows it."""
    m: Milestones = values["milestones"]
    aftersales = values["aftersales"]
    cases = aftersales.values()
    claimed_refund = sum(c.amount for c in cases if c.state is AftersaleState.REFUNDED) if aftersales else 0
    payment_stamp = values["payment_stamp"]
    total_amount = values["total_amount"]
    claimed_paid = m.paid_at is not None or payment_stamp is not None or m.completed_at is not None
    deposit = m.deposit_paid_at is not None or values["deposit_stamp"] is not None
    claimed_amount = values["payment_claim"] if payment_stamp is not None else (total_amount if claimed_paid else 0)

    if books is None:
        books = money(values["ledger"], values["currency"])
    paid = claimed_paid or books.confirmed
    refunded = max(claimed_refund, books.refunded)
    basis = books.paid or claimed_amount or total_amount
    fully_refunded = refunded > 0 and basis > 0 and refunded >= basis

    if refunded > 0:
        payment = PaymentStatus.REFUNDED if fully_refunded else PaymentStatus.PARTIALLY_REFUNDED
    elif paid:
        payment = PaymentStatus.PAID
    elif deposit:
        payment = PaymentStatus.DEPOSIT_PAID
    else:
        payment = PaymentStatus.UNPAID

    if any(c.state not in AFTERSALE_ENDED for c in cases):
        aftersale = AftersaleStatus.IN_PROGRESS
    elif refunded > 0:
        aftersale = AftersaleStatus.REFUNDED if fully_refunded else AftersaleStatus.PARTIALLY_REFUNDED
    elif aftersales:
        aftersale = AftersaleStatus.CLOSED
    else:
        aftersale = AftersaleStatus.NONE

    # ST-4: only a physical outbound (warehouse) or the carrier's first scan means the goods left.
    went_out = m.outbound_at is not None or m.picked_up_at is not None
    partial = went_out and m.picked_up_at is None and not _shipped_fully(values["lines"], values["packages"])
    if m.delivered_at or m.completed_at:
        fulfillment = FulfillmentStatus.DELIVERED
    elif went_out:
        fulfillment = FulfillmentStatus.PARTIALLY_SHIPPED if partial else FulfillmentStatus.SHIPPED
    elif m.ship_requested_at:
        fulfillment = FulfillmentStatus.SHIP_REQUESTED
    else:
        fulfillment = FulfillmentStatus.UNFULFILLED

    hold = bool(values["hold_reason"]) or (deposit and not paid)
    if m.cancelled_at:
        status = OrderStatus.CLOSED if (paid or deposit) and refunded > 0 and fully_refunded else OrderStatus.CANCELLED
    elif fully_refunded:
        status = OrderStatus.CLOSED
    elif m.completed_at:
        status = OrderStatus.COMPLETED
    elif m.delivered_at:
        status = OrderStatus.DELIVERED
    elif went_out:
        status = OrderStatus.PARTIALLY_SHIPPED if partial else OrderStatus.SHIPPED
    elif hold:
        status = OrderStatus.ON_HOLD
    elif paid:
        status = OrderStatus.PAID
    else:
        status = OrderStatus.PENDING_PAYMENT

    return {"status": status, "payment_status": payment, "fulfillment_status": fulfillment,
            "aftersale_status": aftersale, "paid_amount": books.paid,
            "refunded_amount": books.refunded, "payment_confirmed": books.confirmed}


def with_ledger(order: Order, ledger: dict[str, LedgerLine]) -> Order:
    """`order` with its ledger records replaced by `ledger` (what the ledger holds) and the money and
    statuses derived again; the status still never moves back."""
    values = {**order.__dict__, "ledger": ledger}
    derived = _derived(values)
    if STATUS_RANK[derived["status"]] < STATUS_RANK[order.status]:
        derived["status"] = order.status
    return updated(order, {"ledger": ledger, **derived})


def effective_hold(order: Order) -> str:
    """Why an ON_HOLD order is held: the channel's reason, or the presale balance still due."""
    if order.hold_reason:
        return order.hold_reason
    if order.status is OrderStatus.ON_HOLD and order.payment_status is PaymentStatus.DEPOSIT_PAID:
        return PRESALE_HOLD
    return ""


def apply_event(current: Order | None, event: OrderEvent, order_id: str | None = None) -> tuple[Order, Transition]:
    """Merge one event and derive the statuses; the status never moves backwards."""
    order, update, transition = event_update(current, event, order_id)
    return (updated(order, update) if update else order), transition


def event_update(current: Order | None, event: OrderEvent,
                 order_id: str | None = None) -> tuple[Order, dict, Transition]:
    """`apply_event` as (the order it starts from, the fields the event changes, the transition).

    The same result as `derive(merge_event(...))` with the backwards guard, built as one update
    (copying a model costs more than working out what changes). An empty update means the event
    changes nothing: every entry is a new fact, a newer stamp or a status that follows from them.
    """
    order = current or _new_order(event, order_id)
    update = _merge_update(order, event)
    values = {**order.__dict__, **update} if update else order.__dict__
    books = None
    if current is not None and current.ledger and "ledger" not in update and "currency" not in update:
        # The same ledger: the same money as the stored order's (most events of a paid order move no money).
        books = Money(paid=current.paid_amount, refunded=current.refunded_amount,
                      confirmed=current.payment_confirmed)
    for field, value in _derived(values, books).items():
        if value != values[field]:
            update[field] = value
    status = update.get("status", order.status)
    before = current.status if current is not None else None
    held: OrderStatus | None = None
    if before is not None and STATUS_RANK[status] < STATUS_RANK[before]:
        held = status
        update.pop("status")  # the stored status is `before`: keep it
    return order, update, Transition(before, update.get("status", order.status), held_back_from=held)
