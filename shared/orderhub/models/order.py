"""The canonical order and the normalised channel event that changes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orderhub.lifecycle.statuses import (
    AftersaleStatus,
    EventKind,
    FulfillmentStatus,
    OrderStatus,
    PaymentStatus,
)

MinorUnits = Annotated[int, Field(ge=0, le=10**12)]  # money: integer minor units (fen, cents)
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("time must carry a UTC offset")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(max_length=200)] = ""
    quantity: Annotated[int, Field(gt=0, le=100_000)]
    unit_price: MinorUnits


class Region(BaseModel):
    """Where the order goes, coarse enough not to be personal data (routing, reports)."""

    model_config = ConfigDict(frozen=True)

    province: str = ""
    city: str = ""


class OrderDetails(BaseModel):
    model_config = ConfigDict(frozen=True)

    currency: Currency
    total_amount: MinorUnits
    lines: Annotated[tuple[OrderLine, ...], Field(min_length=1, max_length=500)]
    region: Region = Region()


class PaymentFact(BaseModel):
    model_config = ConfigDict(frozen=True)

    transaction_id: Annotated[str, Field(min_length=1, max_length=64)]
    amount: MinorUnits
    method: str = ""


class ShipmentFact(BaseModel):
    model_config = ConfigDict(frozen=True)

    carrier: Annotated[str, Field(min_length=1, max_length=32)]
    tracking_no: Annotated[str, Field(min_length=1, max_length=64)]


class RefundFact(BaseModel):
    model_config = ConfigDict(frozen=True)

    refund_id: Annotated[str, Field(min_length=1, max_length=64)]
    amount: MinorUnits
    reason: Annotated[str, Field(max_length=200)] = ""


class OrderEvent(BaseModel):
    """One channel event, normalised: the only input the state machine takes.

    `kind` is None when the channel's code has no mapping yet: the event is logged as a
    mapping gap and changes nothing (codes are reported, never guessed).
    """

    model_config = ConfigDict(frozen=True)

    channel: str
    channel_order_id: Annotated[str, Field(min_length=1, max_length=64)]
    shop_id: str = ""
    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    channel_code: str
    kind: EventKind | None
    event_time: AwareDatetime
    details: OrderDetails | None = None
    payment: PaymentFact | None = None
    shipment: ShipmentFact | None = None
    refund: RefundFact | None = None


class Stamp(BaseModel):
    """Which event a piece of state came from: (event time, event id) orders them totally."""

    model_config = ConfigDict(frozen=True)

    at: str  # UTC ISO
    event_id: str

    def key(self) -> tuple[str, str]:
        return (self.at, self.event_id)


class Refund(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: MinorUnits
    stamp: Stamp


class Milestones(BaseModel):
    """When each thing first happened, by the channel's clock (UTC ISO). Earliest report wins."""

    model_config = ConfigDict(frozen=True)

    created_at: str | None = None
    paid_at: str | None = None
    shipped_at: str | None = None
    delivered_at: str | None = None
    completed_at: str | None = None
    cancelled_at: str | None = None


class Order(BaseModel):
    """The canonical order: one per (channel, channel order id), whatever arrives in whatever order."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    channel: str
    channel_order_id: str
    shop_id: str = ""
    status: OrderStatus = OrderStatus.PENDING_PAYMENT
    payment_status: PaymentStatus = PaymentStatus.UNPAID
    fulfillment_status: FulfillmentStatus = FulfillmentStatus.UNFULFILLED
    aftersale_status: AftersaleStatus = AftersaleStatus.NONE
    currency: str = ""
    total_amount: int = 0
    paid_amount: int = 0
    refunded_amount: int = 0
    lines: tuple[OrderLine, ...] = ()
    region: Region = Region()
    payment_transaction_id: str = ""
    carrier: str = ""
    tracking_no: str = ""
    milestones: Milestones = Milestones()
    refunds: dict[str, Refund] = Field(default_factory=dict)
    # Stamps of the last-writer-wins parts: the details snapshot, payment, shipment.
    details_stamp: Stamp | None = None
    payment_stamp: Stamp | None = None
    shipment_stamp: Stamp | None = None
    # Where it came from (ING-9): the channel and its earliest event (by channel time).
    source_event_id: str = ""
    source_event_time: str = ""
    last_event_time: str = ""
    created_in_hub_at: str = ""
    updated_in_hub_at: str = ""
    version: int = 0
