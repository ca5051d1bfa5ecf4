"""The one status language. Channels map their own codes onto these (data, per channel).

`status` is what the order is, from the customer's side; the sub-statuses say where money,
goods and after-sale stand. They are kept apart because channels report them apart, and
because "paid and cancelled, refund pending" must be expressible without a new status.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    ON_HOLD = "ON_HOLD"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"  # ended before shipping
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
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class FulfillmentStatus(StrEnum):
    UNFULFILLED = "UNFULFILLED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"


class AftersaleStatus(StrEnum):
    NONE = "NONE"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class EventKind(StrEnum):
    """What a channel event says happened, in hub terms. Channel codes map onto these."""

    CREATED = "CREATED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"
