"""The canonical order and the normalised channel event that changes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from orderhub.lifecycle.statuses import (
    AftersaleState,
    AftersaleStatus,
    AftersaleType,
    EventKind,
    FulfillmentStatus,
    LogisticsStatus,
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
    """Where the order goes (province, city), coarse enough not to be personal data; shown and published."""

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

    transaction_id: Annotated[str, Field(max_length=64)] = ""
    amount: MinorUnits
    method: str = ""


class ShipmentFact(BaseModel):
    """The waybill the channel knows of (carrier code as the channel spells it)."""

    model_config = ConfigDict(frozen=True)

    carrier: Annotated[str, Field(min_length=1, max_length=32)]
    tracking_no: Annotated[str, Field(min_length=1, max_length=64)]


class PackageLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(gt=0, le=100_000)]


class OutboundFact(BaseModel):
    """A package that physically left the warehouse (the `wms` integration only, ST-4).

    No lines means the whole order went out in this package.
    """

    model_config = ConfigDict(frozen=True)

    package_id: Annotated[str, Field(min_length=1, max_length=64)]
    warehouse: Annotated[str, Field(max_length=64)] = ""
    carrier: Annotated[str, Field(max_length=32)] = ""
    tracking_no: Annotated[str, Field(max_length=64)] = ""
    lines: tuple[PackageLine, ...] = ()


class LogisticsFact(BaseModel):
    """What the carrier last said about the parcel (kuaidi100 and the like)."""

    model_config = ConfigDict(frozen=True)

    state: LogisticsStatus
    carrier: Annotated[str, Field(max_length=32)] = ""
    tracking_no: Annotated[str, Field(min_length=1, max_length=64)]
    description: Annotated[str, Field(max_length=200)] = ""  # the carrier's last scan text, no address


class AftersaleFact(BaseModel):
    """One after-sale case as the channel reports it now; cases are keyed by the channel's id."""

    model_config = ConfigDict(frozen=True)

    case_id: Annotated[str, Field(min_length=1, max_length=64)]
    state: AftersaleState
    type: AftersaleType = AftersaleType.REFUND_ONLY
    amount: MinorUnits = 0
    reason: Annotated[str, Field(max_length=200)] = ""
    channel_state: Annotated[str, Field(max_length=64)] = ""  # the channel's own code, kept for ops


class OrderEvent(BaseModel):
    """One channel event, normalised: the only input the state machine takes.

    Which order: `order_id` when the sender knows the hub id, else (`channel`,
    `channel_order_id`), else - for carrier callbacks - the order whose waybill is
    `logistics.tracking_no`. `source` is who reported it when that is not the order's own
    channel (`wms`, `kuaidi100`, `import`).

    `kinds` are the milestones the channel's code implies (empty: it implies none). Codes the
    channel's table does not know are listed in `gaps`: reported, never guessed. Payload
    fields the channel's schema does not know are listed in `drift`.
    """

    model_config = ConfigDict(frozen=True)

    channel: str
    channel_order_id: Annotated[str, Field(max_length=64)] = ""
    order_id: str = ""
    source: str = ""
    shop_id: str = ""
    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    channel_code: Annotated[str, Field(max_length=200)]
    kinds: tuple[EventKind, ...] = ()
    # When a snapshot says when each milestone happened (Taobao's pay_time, consign_time): used
    # instead of event_time for those milestones.
    milestone_times: dict[EventKind, AwareDatetime] = Field(default_factory=dict)
    gaps: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    event_time: AwareDatetime
    details: OrderDetails | None = None
    payment: PaymentFact | None = None
    deposit: PaymentFact | None = None
    shipment: ShipmentFact | None = None
    hold: str | None = None  # a status snapshot: the hold reason, "" = not held; None = says nothing
    region: Region | None = None  # an address change (coarse part only; the address itself is not kept)
    outbound: OutboundFact | None = None
    logistics: LogisticsFact | None = None
    aftersales: tuple[AftersaleFact, ...] = ()

    @property
    def reporter(self) -> str:
        return self.source or self.channel

    @model_validator(mode="after")
    def _names_its_order(self) -> OrderEvent:
        if not (self.order_id or self.channel_order_id or self.logistics is not None):
            raise ValueError("an event needs order_id, channel_order_id or a tracking number")
        return self


class Stamp(BaseModel):
    """Which event a piece of state came from: (event time, event id) orders them totally."""

    model_config = ConfigDict(frozen=True)

    at: str  # UTC ISO
    event_id: str

    def key(self) -> tuple[str, str]:
        return (self.at, self.event_id)


class AftersaleCase(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: AftersaleState
    type: AftersaleType
    amount: MinorUnits
    reason: str = ""
    channel_state: str = ""
    stamp: Stamp
    opened_at: str  # earliest report of the case


class Package(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: str  # physical outbound time (warehouse clock, UTC)
    warehouse: str = ""
    carrier: str = ""
    tracking_no: str = ""
    lines: tuple[PackageLine, ...] = ()


class Milestones(BaseModel):
    """When each thing first happened, by the reporter's clock (UTC ISO). Earliest report wins."""

    model_config = ConfigDict(frozen=True)

    created_at: str | None = None
    deposit_paid_at: str | None = None
    paid_at: str | None = None
    ship_requested_at: str | None = None
    outbound_at: str | None = None
    picked_up_at: str | None = None
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
    logistics_status: LogisticsStatus = LogisticsStatus.NONE
    aftersale_status: AftersaleStatus = AftersaleStatus.NONE
    hold_reason: str = ""  # why it is ON_HOLD (the channel's latest word, or "presale balance due")
    currency: str = ""
    total_amount: int = 0
    deposit_amount: int = 0
    paid_amount: int = 0
    refunded_amount: int = 0
    lines: tuple[OrderLine, ...] = ()
    region: Region = Region()
    payment_transaction_id: str = ""
    carrier: str = ""
    tracking_no: str = ""
    milestones: Milestones = Milestones()
    aftersales: dict[str, AftersaleCase] = Field(default_factory=dict)
    packages: dict[str, Package] = Field(default_factory=dict)
    # Stamps of the last-writer-wins parts.
    details_stamp: Stamp | None = None
    payment_stamp: Stamp | None = None
    deposit_stamp: Stamp | None = None
    shipment_stamp: Stamp | None = None
    hold_stamp: Stamp | None = None
    region_stamp: Stamp | None = None
    logistics_stamp: Stamp | None = None
    # Where it came from (ING-9): the channel and its earliest event (by channel time).
    source_event_id: str = ""
    source_event_time: str = ""
    last_event_time: str = ""
    created_in_hub_at: str = ""
    updated_in_hub_at: str = ""
    version: int = 0


_Model = TypeVar("_Model", bound=BaseModel)
_new = object.__new__
_set = object.__setattr__


def updated(model: _Model, update: dict[str, Any]) -> _Model:
    """`model.model_copy(update=update)` for the models here (frozen, no extra fields, no private
    attributes), without pydantic's generic copy: half the cost, and the mapper copies an order and
    its milestones per event. Like model_copy, it does not validate `update`."""
    copy = _new(type(model))
    _set(copy, "__dict__", {**model.__dict__, **update})
    _set(copy, "__pydantic_fields_set__", model.__pydantic_fields_set__ | update.keys())
    _set(copy, "__pydantic_extra__", None)
    _set(copy, "__pydantic_private__", None)
    return copy
