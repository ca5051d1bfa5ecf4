"""Order changes as domain events, derived from the orders table stream (the outbox).

Event ids are derived from (order, version, type), so a stream record processed twice
publishes the same ids again and subscribers see one `Idempotency-Key` per change.
JSON Schemas for these live in events/schemas/ (a test keeps them in step).

Money has events of its own (source `orderhub.payments`, for finance and the ERP): a movement of the
payment voucher ledger newly confirmed is `PaymentConfirmed`, newly reversed `PaymentReversed`, a refund
newly booked (or newly confirmed) `RefundBooked`. Their ids are derived from (order, movement, type,
state), so the same movement announced by two stream records (a retry) is one event to subscribers.
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
from orderhub.models.order import MethodClass, Milestones, MoneyKind, MoneyState, Order, OrderLine, Region
from orderhub.payments.ledger import Movement, movements
from orderhub.store.order_item import order_from_item

EVENT_SOURCE = "orderhub.orders"
PAYMENTS_SOURCE = "orderhub.payments"
SCHEMA_VERSION = 1

DetailType = Literal["OrderCreated", "OrderStatusChanged", "OrderUpdated"]
MoneyDetailType = Literal["PaymentConfirmed", "PaymentReversed", "RefundBooked"]
MONEY_DETAIL_TYPES: frozenset[str] = frozenset(("PaymentConfirmed", "PaymentReversed", "RefundBooked"))


class LedgerEntry(BaseModel):
    """One money movement of the order's payment voucher ledger, as it stands (no personal data)."""

    model_config = ConfigDict(frozen=True)

    entry_id: str  # <provider>:<payment|refund>:<reference>
    provider: str  # wechatpay, alipay, bank, or the platform that collected it (taobao, jd, ...)
    kind: MoneyKind
    reference: str  # the provider's transaction or refund id
    state: MoneyState
    amount: int  # minor units
    currency: str
    method: MethodClass
    fee: int | None = None
    payment_reference: str = ""  # a refund: the payment it returns; a platform payment: its payment number
    merchant_reference: str = ""  # out_trade_no / out_refund_no
    occurred_at: str  # the provider's time (UTC ISO)
    business_date: str  # the business day it belongs to (Asia/Shanghai by default)


def ledger_entries(order: Order) -> tuple[LedgerEntry, ...]:
    return tuple(_entry(m) for m in _movements(order))


def _movements(order: Order) -> list[Movement]:
    return movements(order.ledger, order.currency) if order.ledger else []


def _entry(m: Movement) -> LedgerEntry:
    return LedgerEntry(entry_id=m.entry_id, provider=m.provider, kind=m.kind, reference=m.reference, state=m.state,
                       amount=m.amount, currency=m.currency, method=m.method, fee=m.fee,
                       payment_reference=m.payment_reference, merchant_reference=m.merchant_reference,
                       occurred_at=m.occurred_at, business_date=m.business_date)


class _OrderEventHead(BaseModel):
    """What every domain event's `detail` starts with: its id and the order (version) it is about."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    schema_version: int = SCHEMA_VERSION
    order_id: str
    order_version: int
    channel: str
    channel_order_id: str
    shop_id: str


class OrderChange(_OrderEventHead):
    """The `detail` of every order domain event. No personal data."""

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
    # The money as the payment voucher ledger has it: paid_amount and refunded_amount are its confirmed
    # payments and refunds; payment_confirmed says a confirmed payment is there (PAY-2, EXC-1).
    payment_confirmed: bool = False
    net_amount: int = 0
    ledger: tuple[LedgerEntry, ...] = ()
    lines: tuple[OrderLine, ...]
    region: Region
    carrier: str
    tracking_no: str
    # When each thing first happened, by the reporter's clock (paid_at, ship_requested_at, outbound_at...).
    milestones: Milestones = Milestones()
    occurred_at: str


class MoneyMovement(_OrderEventHead):
    """The `detail` of every money domain event: one ledger movement and its order's money after it."""

    movement: LedgerEntry
    paid_amount: int  # the order's confirmed payments, after this movement
    refunded_amount: int
    net_amount: int
    payment_confirmed: bool
    order_status: OrderStatus
    occurred_at: str  # when the hub booked it (UTC ISO)


class BusEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    detail_type: DetailType | MoneyDetailType
    detail: OrderChange | MoneyMovement

    @property
    def source(self) -> str:
        return PAYMENTS_SOURCE if self.detail_type in MONEY_DETAIL_TYPES else EVENT_SOURCE

    def to_put_events_entry(self, bus_name: str) -> dict[str, Any]:
        return {"Source": self.source, "DetailType": self.detail_type,
                "Detail": self.detail.model_dump_json(), "EventBusName": bus_name}


def entry_of(detail_type: str, detail: dict[str, Any]) -> BusEntry:
    """A bus entry from its type and detail document (a parked entry read back)."""
    model = MoneyMovement if detail_type in MONEY_DETAIL_TYPES else OrderChange
    return BusEntry(detail_type=detail_type, detail=model.model_validate(detail))  # type: ignore[arg-type]


def event_id(order_id: str, version: int, detail_type: str) -> str:
    return hashlib.sha256(f"{order_id}:{version}:{detail_type}".encode()).hexdigest()[:32]


def _change(detail_type: DetailType, new: Order, previous_status: OrderStatus | None,
            ledger: tuple[LedgerEntry, ...]) -> BusEntry:
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
        payment_transaction_id=new.payment_transaction_id, payment_confirmed=new.payment_confirmed,
        net_amount=new.paid_amount - new.refunded_amount, ledger=ledger, lines=new.lines,
        region=new.region,
        carrier=new.carrier, tracking_no=new.tracking_no, milestones=new.milestones,
        occurred_at=new.updated_in_hub_at,
    ))


def events_for_change(old: Order | None, new: Order) -> list[BusEntry]:
    """INSERT: created (+ its first status). MODIFY: status changed, or otherwise updated. Then one money
    event per ledger movement the change confirmed, reversed or (a refund) booked."""
    if old is not None and old.version == new.version:
        return []  # a rewrite of the same version carries no change
    moves = _movements(new)  # read once: each change carries them, and the money events come from them
    ledger = tuple(_entry(m) for m in moves)
    if old is None:
        return [_change("OrderCreated", new, None, ledger), _change("OrderStatusChanged", new, None, ledger),
                *money_events(None, new, moves)]
    if old.status != new.status:
        return [_change("OrderStatusChanged", new, old.status, ledger), *money_events(old, new, moves)]
    return [_change("OrderUpdated", new, old.status, ledger), *money_events(old, new, moves)]


def money_events(old: Order | None, new: Order, moves: list[Movement]) -> list[BusEntry]:
    """One money event per movement of `moves` (the new order's) that the change confirmed, reversed or, a
    refund, booked."""
    if not new.ledger or (old is not None and old.ledger == new.ledger):
        return []
    before = {m.entry_id: m for m in _movements(old)} if old is not None else {}
    entries = []
    for m in moves:
        was = before.get(m.entry_id)
        if was is not None and was.state is m.state:
            continue
        if m.state is MoneyState.REVERSED:
            kind: MoneyDetailType = "PaymentReversed"
        elif m.kind is MoneyKind.REFUND:
            kind = "RefundBooked"
        elif m.state is MoneyState.CONFIRMED:
            kind = "PaymentConfirmed"
        else:
            continue  # a payment announced, not yet confirmed: told when it is
        entries.append(BusEntry(detail_type=kind, detail=MoneyMovement(
            event_id=hashlib.sha256(f"{new.order_id}:{m.entry_id}:{kind}:{m.state._value_}".encode()).hexdigest()[:32],
            order_id=new.order_id, order_version=new.version, channel=new.channel,
            channel_order_id=new.channel_order_id, shop_id=new.shop_id, movement=_entry(m),
            paid_amount=new.paid_amount, refunded_amount=new.refunded_amount,
            net_amount=new.paid_amount - new.refunded_amount, payment_confirmed=new.payment_confirmed,
            order_status=new.status, occurred_at=new.updated_in_hub_at)))
    return entries


def events_for_stream_record(record: dict[str, Any]) -> list[BusEntry]:
    """A DynamoDB stream record (Lambda event shape) of the orders table -> domain events."""
    if record.get("eventName") == "REMOVE":
        return []  # a deleted item is no event of the order's life (nothing deletes orders today: no TTL on the table)
    images = record["dynamodb"]
    new = order_from_item(images["NewImage"])
    old_image = images.get("OldImage")
    old = order_from_item(old_image) if old_image else None
    return events_for_change(old, new)
