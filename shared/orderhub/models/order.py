"""The canonical order and the normalised channel event that changes it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
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


class MoneyKind(StrEnum):
    PAYMENT = "payment"  # money in from the buyer
    REFUND = "refund"  # money back to the buyer


class MoneyState(StrEnum):
    """What the source says of one money movement. A movement only moves forward: pending, then confirmed
    or reversed; reversed (it did not happen after all, or finance corrected it) outranks confirmed."""

    PENDING = "pending"  # announced, not yet certain (a bank transfer recorded, a refund that went abnormal)
    CONFIRMED = "confirmed"
    REVERSED = "reversed"


class MethodClass(StrEnum):
    """How the money travelled (PAY-2); journal accounts are chosen by it."""

    ONLINE = "online"  # a payment provider of the merchant's own (WeChat Pay, Alipay, the shop's gateway)
    BANK_TRANSFER = "bank_transfer"
    CREDIT = "credit"  # on account: the buyer pays later
    COLLECTED_ON_BEHALF = "collected_on_behalf"  # a platform took the money and settles it later


Reference = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class MoneyFact(BaseModel):
    """One money movement as its source reports it: a payment provider's callback, a platform's paid or
    refund fact, a transfer finance recorded. The ledger keeps one entry per (provider, kind, reference)."""

    model_config = ConfigDict(frozen=True)

    provider: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_.-]+$")]
    kind: MoneyKind
    reference: Reference  # the provider's transaction id (payment) or refund id (refund)
    state: MoneyState
    amount: MinorUnits  # for `cumulative` refunds: everything refunded on the payment so far
    currency: Currency
    method: MethodClass
    fee: MinorUnits | None = None  # the provider's fee, where it says
    payment_reference: Annotated[str, Field(max_length=64)] = ""  # a refund: the payment it returns
    merchant_reference: Annotated[str, Field(max_length=64)] = ""  # out_trade_no / out_refund_no / out_biz_no
    account: Annotated[str, Field(max_length=64)] = ""  # the merchant account the money went to (mchid, app id)
    occurred_at: AwareDatetime  # the provider's time of the movement (success_time, gmt_payment, gmt_refund)
    # Alipay reports refunds as the trade's refunded total: each refund's own amount is the step between totals.
    cumulative: bool = False
    note: Annotated[str, Field(max_length=200)] = ""  # why (finance's reason; the provider's refund status)
    actor: Annotated[str, Field(max_length=128)] = ""  # who recorded it, when a person did (finance)
    # The provider's payload as the hub read it (WeChat Pay: the decrypted resource; Alipay: the form), kept
    # with the entry for as long as the books are kept. The raw request itself is in the event log.
    payload: Annotated[str, Field(max_length=16_000)] = ""


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
    money: Annotated[tuple[MoneyFact, ...], Field(max_length=50)] = ()  # movements a payment source reports

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


class LedgerLine(BaseModel):
    """One record of the payment voucher ledger as its order keeps it (the payments table holds the record
    itself, with the provider's payload). Records are never changed: a movement's later state is a record
    of its own (`record_id` names the state and the reported time), so duplicates and arrival order leave
    the same set."""

    model_config = ConfigDict(frozen=True)

    provider: str
    kind: MoneyKind
    reference: str
    state: MoneyState
    amount: int
    currency: str
    method: MethodClass
    fee: int | None = None
    payment_reference: str = ""
    merchant_reference: str = ""
    occurred_at: str  # UTC ISO
    business_date: str  # YYYY-MM-DD in the business time zone
    cumulative: bool = False
    note: str = ""

    @property
    def entry_id(self) -> str:
        return entry_id(self.provider, self.kind, self.reference)

    @property
    def record_id(self) -> str:
        return record_id(self.entry_id, self.state, self.occurred_at)


def entry_id(provider: str, kind: MoneyKind, reference: str) -> str:
    """The ledger key of a money movement: one provider's transaction (or refund) id is booked once (PAY-1)."""
    return f"{provider}:{kind._value_}:{reference}"


def record_id(entry: str, state: MoneyState, occurred_at: str) -> str:
    """A record is one report of a movement in one state at one time: each report books itself once, so
    the set of records is the same whatever order reports arrive in, and the movement is counted once."""
    return f"{entry}#{state._value_}@{occurred_at}"


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
    paid_amount: int = 0  # confirmed payments in the ledger
    refunded_amount: int = 0  # confirmed refunds in the ledger
    payment_claim: int = 0  # what the channel's latest payment fact says was paid (its word, not the money)
    lines: tuple[OrderLine, ...] = ()
    region: Region = Region()
    payment_transaction_id: str = ""
    carrier: str = ""
    tracking_no: str = ""
    milestones: Milestones = Milestones()
    aftersales: dict[str, AftersaleCase] = Field(default_factory=dict)
    packages: dict[str, Package] = Field(default_factory=dict)
    # The order's payment voucher ledger records by record id (PAY-2); its money is summed from them.
    ledger: dict[str, LedgerLine] = Field(default_factory=dict)
    payment_confirmed: bool = False  # a confirmed payment is in the ledger (EXC-1)
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
