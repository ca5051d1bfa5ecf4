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
from functools import lru_cache

from orderhub.clock import utc_iso
from orderhub.lifecycle.statuses import (
    STATUS_RANK,
    AftersaleStatus,
    EventKind,
    FulfillmentStatus,
    OrderStatus,
    PaymentStatus,
)
from orderhub.models.order import Milestones, Order, OrderEvent, Refund, Stamp

_MILESTONE_OF_KIND = {
    EventKind.CREATED: "created_at",
    EventKind.PAID: "paid_at",
    EventKind.SHIPPED: "shipped_at",
    EventKind.DELIVERED: "delivered_at",
    EventKind.COMPLETED: "completed_at",
    EventKind.CANCELLED: "cancelled_at",
}

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


def _newer(stamp: Stamp, than: Stamp | None) -> bool:
    return than is None or stamp.key() > than.key()


def _earliest(current: str | None, candidate: str) -> str:
    return candidate if current is None or candidate < current else current


def merge_event(current: Order | None, event: OrderEvent) -> Order:
    """The order with `event`'s facts merged in (statuses not yet derived). Pure."""
    order = current or Order(
        order_id=hub_order_id(event.channel, event.channel_order_id),
        channel=event.channel,
        channel_order_id=event.channel_order_id,
    )
    if event.kind is None:
        return order
    at = utc_iso(event.event_time)
    stamp = Stamp(at=at, event_id=event.event_id)
    update: dict = {}

    milestone = _MILESTONE_OF_KIND.get(event.kind)
    if milestone is not None:
        earliest = _earliest(getattr(order.milestones, milestone), at)
        update["milestones"] = order.milestones.model_copy(update={milestone: earliest})

    if event.details is not None and _newer(stamp, order.details_stamp):
        d = event.details
        update |= {"currency": d.currency, "total_amount": d.total_amount, "lines": d.lines,
                   "region": d.region, "details_stamp": stamp}
    if event.payment is not None and _newer(stamp, order.payment_stamp):
        update |= {"payment_transaction_id": event.payment.transaction_id,
                   "paid_amount": event.payment.amount, "payment_stamp": stamp}
    if event.shipment is not None and _newer(stamp, order.shipment_stamp):
        update |= {"carrier": event.shipment.carrier, "tracking_no": event.shipment.tracking_no,
                   "shipment_stamp": stamp}
    if event.refund is not None:
        known = order.refunds.get(event.refund.refund_id)
        if known is None or _newer(stamp, known.stamp):
            refund = Refund(amount=event.refund.amount, stamp=stamp)
            update["refunds"] = {**order.refunds, event.refund.refund_id: refund}

    # Provenance is the earliest event by channel time, so it too is independent of arrival order.
    if not order.source_event_id or (at, event.event_id) < (order.source_event_time, order.source_event_id):
        update |= {"source_event_id": event.event_id, "source_event_time": at}
    if not order.shop_id and event.shop_id:
        update["shop_id"] = event.shop_id
    if at > order.last_event_time:
        update["last_event_time"] = at
    return order.model_copy(update=update)


def derive(order: Order) -> Order:
    """Statuses and amounts as the facts say."""
    m: Milestones = order.milestones
    refunded = sum(r.amount for r in order.refunds.values())
    paid = m.paid_at is not None or order.payment_stamp is not None
    paid_amount = order.paid_amount if order.payment_stamp is not None else (order.total_amount if paid else 0)
    basis = paid_amount or order.total_amount
    fully_refunded = refunded > 0 and basis > 0 and refunded >= basis

    if refunded > 0:
        payment = PaymentStatus.REFUNDED if fully_refunded else PaymentStatus.PARTIALLY_REFUNDED
        aftersale = AftersaleStatus.REFUNDED if fully_refunded else AftersaleStatus.PARTIALLY_REFUNDED
    else:
        payment = PaymentStatus.PAID if paid else PaymentStatus.UNPAID
        aftersale = AftersaleStatus.NONE

    went_out = min((t for t in (m.shipped_at, m.delivered_at, m.completed_at) if t), default=None)
    if m.delivered_at or m.completed_at:
        fulfillment = FulfillmentStatus.DELIVERED
    elif m.shipped_at:
        fulfillment = FulfillmentStatus.SHIPPED
    else:
        fulfillment = FulfillmentStatus.UNFULFILLED

    # A cancellation counts only if it came before the goods went out (by the channel's clock).
    cancelled = m.cancelled_at is not None and (went_out is None or m.cancelled_at < went_out)
    if cancelled:
        status = OrderStatus.CLOSED if fully_refunded else OrderStatus.CANCELLED
    elif fully_refunded:
        status = OrderStatus.CLOSED
    elif m.completed_at:
        status = OrderStatus.COMPLETED
    elif m.delivered_at:
        status = OrderStatus.DELIVERED
    elif m.shipped_at:
        status = OrderStatus.SHIPPED
    elif paid:
        status = OrderStatus.PAID
    else:
        status = OrderStatus.PENDING_PAYMENT

    return order.model_copy(update={
        "status": status, "payment_status": payment, "fulfillment_status": fulfillment,
        "aftersale_status": aftersale, "paid_amount": paid_amount, "refunded_amount": refunded,
    })


def apply_event(current: Order | None, event: OrderEvent) -> tuple[Order, Transition]:
    """Merge one event and derive the statuses; the status never moves backwards."""
    merged = derive(merge_event(current, event))
    before = current.status if current is not None else None
    if before is not None and STATUS_RANK[merged.status] < STATUS_RANK[before]:
        held = merged.status
        return merged.model_copy(update={"status": before}), Transition(before, before, held_back_from=held)
    return merged, Transition(before, merged.status)

