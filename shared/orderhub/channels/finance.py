"""`finance`: finance's commands on the payment voucher ledger, as events of the hub's own (PAY-2, ING-9).

Nothing writes the ledger or an order from the side: a bank transfer finance records, and an entry it
confirms or reverses, is an event through the same intake queue, event log and mapper as a channel's,
so it is logged on its order, replayed like any other, and booked by the mapper like a provider's
callback. There is no webhook (`push = False`): the ledger API (`POST /ledger/transfers`) and
`orderhub ledger` build the command with `orderhub.payments.commands`, which checks it against the
order's ledger and sends one intake message, channel `finance`, whose body is the command:

    {"format": "orderhub.finance/1", "command": "record_transfer" | "confirm" | "reverse",
     "command_id": <unique id, the event id>, "order_id": <hub id>
        (or "order": {"channel", "channel_order_id"}, one of the two),
     "kind": "payment" | "refund", "provider": "bank" | "credit" | <the entry's provider>,
     "reference": <bank serial, or the entry's reference>, "amount": <integer minor units >= 1>,
     "currency": "CNY", "method": "bank_transfer" | "credit" | <the entry's method>,
     "payment_reference": <optional: a refund's payment>, "merchant_reference": <optional>,
     "cumulative": <optional, the entry's>, "occurred_at": <ISO 8601 with offset>,
     "reason": <required, at most 200 characters>, "actor": <who asked: "ops-token", "cli:<user>">}

- `record_transfer` -> a PENDING fact of a new movement: provider `bank` for a bank transfer (the
  reference is the bank's serial number), `credit` for a sale on account (the reference is finance's
  own document number). The money is not certain until finance confirms it against the statement.
- `confirm` -> a CONFIRMED fact of an existing movement, `reverse` -> a REVERSED one (a correction is a
  reversal record, never an edit). Both repeat the entry's money as first reported (provider, kind,
  reference, amount, currency, method, payment reference, cumulative): the ledger counts a movement's
  records as one only when they agree on it (`payments.ledger.same_money`).

The event is `OrderEvent(source="finance", event_id=command_id, channel_code=command, money=(fact,))`,
naming its order by hub id only: the mapper never creates an order for a finance command (an order it
cannot find is retried, then parked), unlike a channel's first event. The fact's note is the reason and
its actor who asked; the command itself is the fact's payload, kept with the ledger record. Amounts are
JSON integers (the body is read with the bounded reader: a fraction is a Decimal and refused).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from orderhub.channels.base import (
    NO_RULES,
    Channel,
    ChannelSettings,
    FieldRules,
    InboundRequest,
    Malformed,
    Reply,
    Unauthorized,
    compact_json,
    loads_decimal,
)
from orderhub.lifecycle.machine import hub_order_id
from orderhub.models.order import AwareDatetime, MethodClass, MoneyFact, MoneyKind, MoneyState, OrderEvent

FORMAT = "orderhub.finance/1"
CHANNEL_NAME = "finance"
MAX_BODY_BYTES = 32 * 1024


class Command(StrEnum):
    RECORD_TRANSFER = "record_transfer"
    CONFIRM = "confirm"
    REVERSE = "reverse"


# What each command says of its movement.
STATE_OF: Mapping[Command, MoneyState] = {
    Command.RECORD_TRANSFER: MoneyState.PENDING,
    Command.CONFIRM: MoneyState.CONFIRMED,
    Command.REVERSE: MoneyState.REVERSED,
}

# The movements finance records itself, by how the money travels: the provider its entries are booked under.
TRANSFER_PROVIDERS: Mapping[MethodClass, str] = {
    MethodClass.BANK_TRANSFER: "bank",  # reference: the bank's serial number of the transfer
    MethodClass.CREDIT: "credit",  # on account: reference is finance's own document (contract, invoice) number
}

MAX_REASON = 200
MAX_AMOUNT = 10**12  # MinorUnits' bound
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

KNOWN_FIELDS = frozenset({
    "format", "command", "command_id", "order_id", "order", "order.channel", "order.channel_order_id", "kind",
    "provider", "reference", "amount", "currency", "method", "payment_reference", "merchant_reference",
    "cumulative", "occurred_at", "reason", "actor",
})


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _reason(value: str) -> str:
    value = _no_control(value.strip())
    if not value:
        raise ValueError("a reason is required")
    return value


_Text64 = Annotated[str, Field(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]


class OrderRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    channel: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    channel_order_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


class FinanceCommand(BaseModel):
    """A finance command as it travels in the intake message: complete, every money field spelled out."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # unknown fields are drift, reported, not refused

    format: Annotated[str, Field(pattern=f"^{re.escape(FORMAT)}$")]
    command: Command
    command_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    order_id: Annotated[str, Field(pattern=r"^oh_[a-z2-7]{24}$")] | None = None
    order: OrderRef | None = None
    kind: MoneyKind
    provider: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_.-]+$")]
    reference: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    amount: Annotated[int, Strict(), Field(ge=1, le=MAX_AMOUNT)]  # a JSON integer: not 12.5, not `true`
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    method: MethodClass
    payment_reference: _Text64 = ""
    merchant_reference: _Text64 = ""
    cumulative: Annotated[bool, Strict()] = False
    occurred_at: AwareDatetime
    reason: Annotated[str, Field(max_length=MAX_REASON)]
    actor: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]

    @model_validator(mode="after")
    def _consistent(self) -> FinanceCommand:
        if (self.order is None) == (self.order_id is None):
            raise ValueError("name the order by order_id (the hub id) or by order {channel, channel_order_id}, "
                             "one of them")
        _reason(self.reason)
        if self.command is Command.RECORD_TRANSFER:
            expected = TRANSFER_PROVIDERS.get(self.method)
            if expected is None:
                raise ValueError(f"record_transfer records a bank transfer or a sale on credit, not {self.method}")
            if self.provider != expected:
                raise ValueError(f"a {self.method} is recorded under provider {expected!r}, not {self.provider!r}")
            if self.cumulative:
                raise ValueError("a recorded transfer is its own amount, never cumulative")
        return self

    @property
    def state(self) -> MoneyState:
        return STATE_OF[self.command]

    @property
    def hub_order_id(self) -> str:
        if self.order_id is not None:
            return self.order_id
        assert self.order is not None  # the validator insists on one of the two
        return hub_order_id(self.order.channel, self.order.channel_order_id)

    def body(self) -> bytes:
        """The command as the intake message's body (what the event log keeps and a replay re-reads)."""
        return compact_json(self.model_dump(mode="json", exclude_none=True)).encode()


def describe(exc: ValidationError) -> str:
    """The first problems as `field: message`, without echoing what was sent."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:4]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def read_command(payload: Any) -> FinanceCommand:
    """A parsed body as a command; Malformed with the reasons when it is not one."""
    if not isinstance(payload, dict):
        raise Malformed("body must be a JSON object")
    try:
        return FinanceCommand.model_validate(payload)
    except ValidationError as exc:
        raise Malformed(describe(exc)) from None


def fact_of(command: FinanceCommand) -> MoneyFact:
    return MoneyFact(provider=command.provider, kind=command.kind, reference=command.reference,
                     state=command.state, amount=command.amount, currency=command.currency, method=command.method,
                     payment_reference=command.payment_reference, merchant_reference=command.merchant_reference,
                     occurred_at=command.occurred_at, cumulative=command.cumulative, note=command.reason.strip(),
                     actor=command.actor, payload=command.body().decode())


def event_of(command: FinanceCommand, drift: tuple[str, ...] = ()) -> OrderEvent:
    # By hub id only (channel_order_id left empty): the mapper never creates an order for a finance command.
    channel = command.order.channel if command.order is not None else ""
    return OrderEvent(channel=channel, order_id=command.hub_order_id, source=CHANNEL_NAME,
                      event_id=command.command_id, channel_code=command.command.value, kinds=(), drift=drift,
                      event_time=command.occurred_at, money=(fact_of(command),))


class FinanceChannel(Channel):
    name = CHANNEL_NAME
    push = False
    max_body_bytes = MAX_BODY_BYTES
    known_fields = KNOWN_FIELDS

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        raise Unauthorized("finance commands are sent through the ledger API or `orderhub ledger`, not posted")

    def accepted(self) -> Reply:
        return Reply(202, '{"message":"queued"}')

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        if len(body) > self.max_body_bytes:
            raise Malformed(f"a finance command is at most {self.max_body_bytes} bytes")
        payload = loads_decimal(body)
        if not isinstance(payload, dict):
            raise Malformed("body must be a JSON object")
        payload, drift = self.prepare(payload, rules)
        command = read_command(payload)
        try:
            return [event_of(command, drift)]
        except ValidationError as exc:
            raise Malformed(describe(exc)) from None


CHANNEL = FinanceChannel()
