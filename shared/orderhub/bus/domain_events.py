"""Order changes as domain events, derived from the orders table stream (the outbox).

Event ids are derived from (order, version, type), so a stream record processed twice
publishes the same ids again and subscribers see one `Idempotency-Key` per change.
JSON Schemas for these live in events/schemas/ (a test keeps them in step).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from orderhub.lifecycle.machine import effective_hold
from orderhub.lifecycle.statuses import (
    AFTERSALE_ENDED,
    AftersaleStatus,
    FulfillmentStatus,
    LogisticsStatus,
    OrderStatus,
    PaymentStatus,
)
from orderhub.models.order import Milestones, Order, OrderLine, Region
from orderhub.store.order_item import order_from_item

EVENT_SOURCE = "orderhub.orders"
SCHEMA_VERSION = 1

DetailType = Literal["OrderCreated", "OrderStatusChanged", "OrderUpdated"]


class OrderChange(BaseModel):
    """The `detail` of every order domain event. No personal data."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    schema_version: int = SCHEMA_VERSION
    order_id: str
    order_version: int
    channel: str
    channel_order_id: str
    shop_id: str
    status: OrderStatus
    previous_status: OrderStatus | None
    payment_status: PaymentStatus
    fulfillment_status: FulfillmentStatus
    logistics_status: LogisticsStatus
    aftersale_status: AftersaleStatus
    hold_reason: str  # why it is ON_HOLD ("" otherwise)
    currency: str
    total_amount: int
    deposit_amount: int
    paid_amount: int
    refunded_amount: int
    # Money asked back in after-sale cases still open (a large refund request, ST-7).
    aftersale_open_amount: int = 0
    # The payment's transaction reference (what finance matches the money by); "" = none yet.
    payment_transaction_id: str = ""
    lines: tuple[OrderLine, ...]
    region: Region
    carrier: str
    tracking_no: str
    # When each thing first happened, by the reporter's clock (paid_at, ship_requested_at, outbound_at...).
    milestones: Milestones = Milestones()
    occurred_at: str


class BusEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    detail_type: DetailType
    detail: OrderChange

    def to_put_events_entry(self, bus_name: str) -> dict[str, Any]:
        return {"Source": EVENT_SOURCE, "DetailType": self.detail_type,
                "Detail": self.detail.model_dump_json(), "EventBusName": bus_name}


def event_id(order_id: str, version: int, detail_type: str) -> str:
    return hashlib.sha256(f"{order_id}:{version}:{detail_type}".encode()).hexdigest()[:32]


def _change(detail_type: DetailType, new: Order, previous_status: OrderStatus | None) -> BusEntry:
    return BusEntry(detail_type=detail_type, detail=OrderChange(
        event_id=event_id(new.order_id, new.version, detail_type),
        order_id=new.order_id, order_version=new.version, channel=new.channel,
        channel_order_id=new.channel_order_id, shop_id=new.shop_id, status=new.status,
        previous_status=previous_status, payment_status=new.payment_status,
        fulfillment_status=new.fulfillment_status, logistics_status=new.logistics_status,
        aftersale_status=new.aftersale_status, hold_reason=effective_hold(new),
        currency=new.currency, total_amount=new.total_amount, deposit_amount=new.deposit_amount,
        paid_amount=new.paid_amount, refunded_amount=new.refunded_amount,
        aftersale_open_amount=sum(c.amount for c in new.aftersales.values() if c.state not in AFTERSALE_ENDED),
        payment_transaction_id=new.payment_transaction_id, lines=new.lines, region=new.region,
        carrier=new.carrier, tracking_no=new.tracking_no, milestones=new.milestones,
        occurred_at=new.updated_in_hub_at,
    ))


def events_for_change(old: Order | None, new: Order) -> list[BusEntry]:
    """INSERT: created (+ its first status). MODIFY: status changed, or otherwise updated."""
    if old is None:
        return [_change("OrderCreated", new, None), _change("OrderStatusChanged", new, None)]
    if old.version == new.version:
        return []  # a rewrite of the same version carries no change
    if old.status != new.status:
        return [_change("OrderStatusChanged", new, old.status)]
    return [_change("OrderUpdated", new, old.status)]


def events_for_stream_record(record: dict[str, Any]) -> list[BusEntry]:
    """A DynamoDB stream record (Lambda event shape) of the orders table -> domain events."""
    if record.get("eventName") == "REMOVE":
        return []  # a deleted item is no event of the order's life (nothing deletes orders today: no TTL on the table)
    images = record["dynamodb"]
    new = order_from_item(images["NewImage"])
    old_image = images.get("OldImage")
    old = order_from_item(old_image) if old_image else None
    return events_for_change(old, new)
