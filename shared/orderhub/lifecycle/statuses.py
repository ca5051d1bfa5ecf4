"""The one status language. Channels map their own codes onto these (data, per channel).

`status` is what the order is, from the customer's side; the sub-statuses say where money,
goods, the parcel and after-sale stand. They are kept apart because channels report them
apart, and because "paid and cancelled, refund pending" must be expressible without a new status.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    ON_HOLD = "ON_HOLD"  # paid (or deposit paid) but not to be shipped: risk control, locked, presale
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"  # physically out of the warehouse (ST-4), not "a person clicked ship"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    CLOSED = "CLOSED"  # ended after payment with the money returned (e.g. fully refunded)


# How far along an order is. A change never lowers it; PAID and ON_HOLD stand level
# (a hold can be released), the two endings outrank everything.
STATUS_RANK: dict[OrderStatus, int] = {
    OrderStatus.PENDING_PAYMENT: 0,
    OrderStatus.PAID: 1,
    OrderStatus.ON_HOLD: 1,
    OrderStatus.PARTIALLY_SHIPPED: 2,
    OrderStatus.SHIPPED: 3,
    OrderStatus.DELIVERED: 4,
    OrderStatus.COMPLETED: 5,
    OrderStatus.CANCELLED: 6,
    OrderStatus.CLOSED: 7,
}

TERMINAL_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.CLOSED})


class PaymentStatus(StrEnum):
    UNPAID = "UNPAID"
    DEPOSIT_PAID = "DEPOSIT_PAID"  # presale: deposit in, balance due (ST-8)
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class FulfillmentStatus(StrEnum):
    UNFULFILLED = "UNFULFILLED"
    SHIP_REQUESTED = "SHIP_REQUESTED"  # marked shipped on the channel; not yet out of the warehouse
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"


class LogisticsStatus(StrEnum):
    """The parcel as the carrier last reported it (OUT-4), latest report by carrier time wins."""

    NONE = "NONE"
    ORDERED = "ORDERED"  # waybill created, not yet collected
    COLLECTED = "COLLECTED"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERED = "DELIVERED"
    EXCEPTION = "EXCEPTION"  # problem parcel: lost, damaged, address problem, customs hold
    REJECTED = "REJECTED"  # refused by the recipient
    RETURNING = "RETURNING"
    RETURNED = "RETURNED"  # back with the sender


class AftersaleStatus(StrEnum):
    """The order's after-sale standing, summed over its cases."""

    NONE = "NONE"
    IN_PROGRESS = "IN_PROGRESS"  # at least one case open
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"  # every case ended without money back (rejected, withdrawn, exchanged)


class AftersaleState(StrEnum):
    """One after-sale case (a return/refund/exchange request) in its own flow (ST-7)."""

    REQUESTED = "REQUESTED"
    AWAITING_SECOND_APPROVAL = "AWAITING_SECOND_APPROVAL"  # the channel waits for the merchant's second consent
    # (Douyin 待商家二次同意: goods back, refund to confirm); as the channel reports it, not enforced by the hub
    APPROVED = "APPROVED"  # refund or return agreed, nothing moved yet
    AWAITING_RETURN = "AWAITING_RETURN"  # buyer to send the goods back
    RETURN_SHIPPED = "RETURN_SHIPPED"
    RETURN_RECEIVED = "RETURN_RECEIVED"
    REFUNDING = "REFUNDING"  # money on its way
    REFUNDED = "REFUNDED"
    REJECTED = "REJECTED"  # merchant or platform refused (the buyer may still appeal)
    CANCELLED = "CANCELLED"  # withdrawn by the buyer, closed, or expired
    EXCHANGED = "EXCHANGED"  # ended with goods, not money: exchange, reship, repair done
    FAILED = "FAILED"


AFTERSALE_ENDED = frozenset({AftersaleState.REFUNDED, AftersaleState.REJECTED, AftersaleState.CANCELLED,
                             AftersaleState.EXCHANGED, AftersaleState.FAILED})


class AftersaleType(StrEnum):
    REFUND_ONLY = "REFUND_ONLY"
    RETURN_REFUND = "RETURN_REFUND"
    EXCHANGE = "EXCHANGE"
    RESHIP = "RESHIP"
    REPAIR = "REPAIR"
    PRICE_PROTECTION = "PRICE_PROTECTION"
    OTHER = "OTHER"


class EventKind(StrEnum):
    """Milestones a channel event can report, in hub terms. Channel codes map onto tuples of these.

    A status snapshot implies the milestones before it (Taobao's TRADE_FINISHED maps to
    PAID + SHIP_REQUESTED + COMPLETED); each milestone keeps the earliest time reported.
    """

    CREATED = "CREATED"
    DEPOSIT_PAID = "DEPOSIT_PAID"
    PAID = "PAID"
    SHIP_REQUESTED = "SHIP_REQUESTED"  # the channel says shipped: a person or an API marked it
    OUTBOUND = "OUTBOUND"  # physically left the warehouse: only the `wms` integration reports it
    PICKED_UP = "PICKED_UP"  # the carrier collected the parcel (its first scan)
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


# Milestones only one kind of source may report (ST-4: the physical outbound time is written
# by the warehouse/scanner integration and nothing else).
RESERVED_KINDS: dict[EventKind, frozenset[str]] = {
    EventKind.OUTBOUND: frozenset({"wms"}),
}
