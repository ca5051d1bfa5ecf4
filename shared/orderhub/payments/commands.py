"""Finance's commands on the payment voucher ledger: checked against the order, then queued as events.

The ledger API (`POST /ledger/transfers`) and `orderhub ledger record-transfer | confirm | reverse` both
call `prepare` then `submit`, so a command means the same whichever way it came. `prepare` reads the
order (by hub id, or channel and channel order number) and refuses with a status and a reason what the
mapper would book wrongly or not at all:

- 400: not a command (unknown or missing fields, wrong types, an amount that is not whole minor units);
- 404: no such order, or no such entry in the order's ledger to confirm or reverse;
- 409: the ledger already says otherwise (a transfer with that serial recorded, an entry already
  confirmed or reversed);
- 422: a command that contradicts the order or the entry (another currency, another amount, a time in
  the future or before the entry was reported).

A confirmation or reversal repeats the entry's money as it was first reported (the person names the
entry; the ledger supplies the rest), so the records of one movement always agree. What passes is the
complete command (`channels.finance.FinanceCommand`), parsed here by the same channel module the status
mapper uses, and sent as one intake message, channel `finance`, whose event id is the command id: the
mapper logs it on the order and books its record like a provider's (ING-9). The check is against the
order as read now: a command racing another on the same entry is settled by the ledger itself (records
are written once, a reversal outranks a confirmation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from orderhub.channels.base import ChannelRejection
from orderhub.channels.finance import (
    CHANNEL,
    CHANNEL_NAME,
    FORMAT,
    MAX_AMOUNT,
    TRANSFER_PROVIDERS,
    Command,
    FinanceCommand,
    describe,
)
from orderhub.clock import EARLIEST_CHANNEL_TIME, utc_iso
from orderhub.intake import event_time_refusal
from orderhub.lifecycle.machine import hub_order_id
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import (
    LedgerLine,
    MethodClass,
    MoneyKind,
    MoneyState,
    Order,
    OrderEvent,
    entry_id,
    record_id,
)
from orderhub.money import exponent, format_minor
from orderhub.payments.ledger import movements

# A transfer is recorded once the bank shows it: a time ahead of the hub clock is a typo (date, time zone).
FUTURE_TOLERANCE = timedelta(minutes=10)
HUB_ORDER_ID = re.compile(r"^oh_[a-z2-7]{24}$")


class CommandRefused(Exception):
    """A command the hub will not queue: `status` (400/404/409/422) and a reason safe to show and log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class OrderReader(Protocol):
    def get_order(self, order_id: str) -> Order | None: ...


class IntakeSender(Protocol):
    def send(self, message: IntakeMessage) -> None: ...


_Short = Annotated[str, Field(max_length=64)]


class CommandRequest(BaseModel):
    """What a person sends: the command without its id and actor (the hub sets those), naming the order by
    hub id or by channel and channel order number, and an entry by its id or by provider, kind and reference.
    Unknown fields are refused: a misspelt `ammount` must not pass as a command without an amount."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Command
    order_id: _Short = ""
    channel: _Short = ""
    channel_order_id: _Short = ""
    entry: Annotated[str, Field(max_length=300)] = ""  # confirm / reverse: an entry id or one of its record ids
    kind: MoneyKind | None = None
    provider: _Short = ""
    reference: _Short = ""
    amount: Annotated[int, Strict(), Field(ge=1, le=MAX_AMOUNT)] | None = None  # minor units (fen): 123.45 CNY is 12345
    currency: _Short = ""
    method: MethodClass | None = None
    payment_reference: _Short = ""
    merchant_reference: _Short = ""
    occurred_at: Annotated[str, Field(max_length=40)] = ""  # ISO 8601 with offset; default: now
    reason: Annotated[str, Field(max_length=1000)] = ""  # checked against the command's limit with its own words


@dataclass(frozen=True)
class Prepared:
    """A command checked against its order: what will be queued, and what it will book."""

    command: FinanceCommand
    event: OrderEvent
    order: Order
    entry_id: str
    record_id: str

    def message(self, received_at: datetime, source_ip: str = "") -> IntakeMessage:
        # The event travels parsed with its body, as a webhook's does: the mapper does not parse it again.
        return IntakeMessage.wrap(CHANNEL_NAME, utc_iso(received_at), self.command.command_id, source_ip, {},
                                  self.command.body(), events=(self.event,))

    def receipt(self) -> dict[str, Any]:
        """What the API answers once the command is queued (202)."""
        return {"command_id": self.command.command_id, "command": self.command.command.value,
                "order_id": self.order.order_id, "entry_id": self.entry_id, "record_id": self.record_id,
                "state": self.command.state.value, "status": "queued"}


def order_ref(text: str) -> dict[str, str]:
    """An operator's order: a hub id (`oh_...`), or `channel:number` (`mall:M20261201001`)."""
    text = text.strip()
    if HUB_ORDER_ID.match(text):
        return {"order_id": text}
    channel, sep, number = text.partition(":")
    if not sep or not channel or not number:
        raise CommandRefused(400, f"{text[:80]!r} is neither a hub order id (oh_...) nor channel:number")
    return {"channel": channel, "channel_order_id": number}


def minor_units(text: str, currency: str) -> int:
    """'123.45' in `currency` -> 12345: exact (no float), at most the currency's own decimals, no separators."""
    digits = exponent(currency)
    value = text.strip()
    pattern = r"\d{1,13}" + (rf"(?:\.\d{{1,{digits}}})?" if digits else "")
    if not re.fullmatch(pattern, value):
        shape = f"at most {digits} decimals" if digits else "no decimals"
        raise CommandRefused(400, f"amount {value[:40]!r} is not an amount in {currency} ({shape}, digits and a "
                                  "point only, no separators or symbols)")
    whole, _, part = value.partition(".")
    amount = int(whole) * 10**digits + (int(part.ljust(digits, "0")) if part else 0)
    if amount < 1:
        raise CommandRefused(400, "amount must be above zero")
    if amount > MAX_AMOUNT:
        raise CommandRefused(400, f"amount is above the ledger's largest ({format_minor(MAX_AMOUNT, currency)})")
    return amount


def find_order(request: CommandRequest | Mapping[str, str], orders: OrderReader) -> Order:
    order_id = _get(request, "order_id")
    channel, number = _get(request, "channel"), _get(request, "channel_order_id")
    if order_id and (channel or number):
        raise CommandRefused(400, "name the order by order_id or by channel and channel_order_id, not both")
    if order_id:
        if not HUB_ORDER_ID.match(order_id):
            raise CommandRefused(400, "order_id must be a hub order id (oh_ and 24 letters and digits)")
    elif channel and number:
        order_id = hub_order_id(channel, number)
    else:
        raise CommandRefused(400, "name the order: order_id, or channel and channel_order_id")
    order = orders.get_order(order_id)
    if order is None:
        raise CommandRefused(404, f"order {order_id if not channel else f'{channel}:{number}'} not found")
    return order


def _get(request: CommandRequest | Mapping[str, str], name: str) -> str:
    value = request.get(name, "") if isinstance(request, Mapping) else getattr(request, name)
    return value.strip() if isinstance(value, str) else ""


def read_request(payload: Any) -> CommandRequest:
    if not isinstance(payload, dict):
        raise CommandRefused(400, "the body must be a JSON object")
    for set_by_hub in ("command_id", "actor"):
        if set_by_hub in payload:
            raise CommandRefused(400, f"{set_by_hub} is set by the hub, not sent")
    try:
        return CommandRequest.model_validate(payload)
    except ValidationError as exc:
        raise CommandRefused(400, describe(exc)) from None


def prepare(request: CommandRequest | Mapping[str, Any], orders: OrderReader, now: datetime, *,
            command_id: str, actor: str) -> Prepared:
    """Check `request` against its order's ledger and build the complete command; CommandRefused if not."""
    req = request if isinstance(request, CommandRequest) else read_request(dict(request))
    order = find_order(req, orders)
    at = _occurred_at(req.occurred_at, now)
    fields = _transfer(req, order) if req.command is Command.RECORD_TRANSFER else _of_entry(req, order, at)
    try:
        command = FinanceCommand(format=FORMAT, command=req.command, command_id=command_id, order_id=order.order_id,
                                 occurred_at=at, reason=req.reason, actor=actor, **fields)
    except ValidationError as exc:
        raise CommandRefused(400, describe(exc)) from None
    try:
        (event,) = CHANNEL.parse(command.body())  # what the status mapper will read of it (replays too)
    except ChannelRejection as rejection:
        raise CommandRefused(400, rejection.reason) from None
    refusal = event_time_refusal(event, now)
    if refusal is not None:
        raise CommandRefused(422, refusal)
    entry = entry_id(command.provider, command.kind, command.reference)
    return Prepared(command=command, event=event, order=order, entry_id=entry,
                    record_id=record_id(entry, command.state, utc_iso(command.occurred_at)))


def submit(prepared: Prepared, queue: IntakeSender, now: datetime, source_ip: str = "") -> IntakeMessage:
    """Queue the command for the status mapper; returns the message sent."""
    message = prepared.message(now, source_ip)
    queue.send(message)
    return message


def _occurred_at(text: str, now: datetime) -> datetime:
    if not text:
        return now
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CommandRefused(400, f"occurred_at {text[:40]!r} is not an ISO 8601 time") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise CommandRefused(400, "occurred_at needs its UTC offset (e.g. 2026-12-01T10:30:00+08:00)")
    if at > now + FUTURE_TOLERANCE:
        raise CommandRefused(422, f"occurred_at {utc_iso(at)} is in the future (hub clock {utc_iso(now)})")
    if at < EARLIEST_CHANNEL_TIME:
        raise CommandRefused(422, f"occurred_at is before {EARLIEST_CHANNEL_TIME:%Y-%m-%d}")
    return at


def _transfer(req: CommandRequest, order: Order) -> dict[str, Any]:
    method = req.method or MethodClass.BANK_TRANSFER
    provider = TRANSFER_PROVIDERS.get(method)
    if provider is None:
        raise CommandRefused(400, f"record_transfer records a bank transfer or a sale on credit, not {method}")
    if req.provider and req.provider != provider:
        raise CommandRefused(400, f"a {method} is recorded under provider {provider!r}, not {req.provider!r}")
    if req.entry:
        raise CommandRefused(400, "record_transfer records a new entry: give its reference, not an entry")
    missing = [name for name in ("reference", "amount", "reason") if not getattr(req, name)]
    if missing:
        raise CommandRefused(400, f"record_transfer needs {', '.join(missing)}")
    currency = req.currency.strip().upper() or order.currency
    if not currency:
        raise CommandRefused(400, "currency is required (the order names none)")
    if order.currency and currency != order.currency:
        raise CommandRefused(422, f"the order is in {order.currency}, the transfer in {currency}")
    kind = req.kind or MoneyKind.PAYMENT
    entry = entry_id(provider, kind, req.reference.strip())
    known = _entries(order).get(entry)
    if known is not None:
        raise CommandRefused(409, f"{entry} is already in the order's ledger ({known[1].value}): confirm or reverse "
                                  "it, or record the transfer under its own serial")
    return {"kind": kind, "provider": provider, "reference": req.reference.strip(), "amount": req.amount,
            "currency": currency, "method": method, "payment_reference": req.payment_reference.strip(),
            "merchant_reference": req.merchant_reference.strip() or order.channel_order_id[:64]}


def _entries(order: Order) -> dict[str, tuple[LedgerLine, MoneyState]]:
    """The order's entries: each one's first report (lowest state, then earliest: the money as first
    announced, what every later record repeats) and the state it stands at."""
    first: dict[str, LedgerLine] = {}
    rank = {MoneyState.PENDING: 0, MoneyState.CONFIRMED: 1, MoneyState.REVERSED: 2}
    for line in order.ledger.values():
        known = first.get(line.entry_id)
        if known is None or (rank[line.state], line.occurred_at) < (rank[known.state], known.occurred_at):
            first[line.entry_id] = line
    states = {m.entry_id: m.state for m in movements(order.ledger, order.currency)}
    return {entry: (line, states[entry]) for entry, line in first.items()}


def _named_entry(req: CommandRequest, order: Order) -> str:
    if req.entry:
        if req.provider or req.reference:
            raise CommandRefused(400, "name the entry by entry or by provider, kind and reference, not both")
        named = req.entry.strip()
        line = order.ledger.get(named)  # one of its record ids names the entry too
        return line.entry_id if line is not None else named
    if not (req.provider and req.reference and req.kind):
        raise CommandRefused(400, f"{req.command.value} needs the entry: entry, or provider, kind and reference")
    return entry_id(req.provider.strip(), req.kind, req.reference.strip())


def _of_entry(req: CommandRequest, order: Order, at: datetime) -> dict[str, Any]:
    if not req.reason.strip():
        raise CommandRefused(400, f"{req.command.value} needs a reason")
    entry = _named_entry(req, order)
    entries = _entries(order)
    found = entries.get(entry)
    if found is None:
        listed = ", ".join(sorted(entries)[:10]) or "none"
        raise CommandRefused(404, f"no entry {entry[:140]} in order {order.order_id}'s ledger (its entries: {listed})")
    line, state = found
    if state is MoneyState.REVERSED:
        raise CommandRefused(409, f"{entry} is reversed: a reversed movement stays reversed (record a new one)")
    if req.command is Command.CONFIRM and state is MoneyState.CONFIRMED:
        raise CommandRefused(409, f"{entry} is already confirmed")
    currency = line.currency or order.currency
    _agrees(req, line, currency)
    if at < datetime.fromisoformat(line.occurred_at):
        raise CommandRefused(422, f"occurred_at is before the entry was reported ({line.occurred_at})")
    return {"kind": line.kind, "provider": line.provider, "reference": line.reference, "amount": line.amount,
            "currency": currency, "method": line.method, "payment_reference": line.payment_reference,
            "merchant_reference": line.merchant_reference, "cumulative": line.cumulative}


def _agrees(req: CommandRequest, line: LedgerLine, currency: str) -> None:
    """What the person repeated of the entry must be the entry's: a confirmation of another amount is a mistake."""
    problems = []
    if req.amount is not None and req.amount != line.amount:
        problems.append(f"the entry's amount is {format_minor(line.amount, currency)}, "
                        f"not {format_minor(req.amount, currency)}")
    if req.currency and req.currency.strip().upper() != currency:
        problems.append(f"the entry is in {currency}, not {req.currency.strip().upper()[:3]}")
    if req.method is not None and req.method is not line.method:
        problems.append(f"the entry's method is {line.method.value}, not {req.method.value}")
    if req.payment_reference and req.payment_reference.strip() != line.payment_reference:
        problems.append("the entry names another payment_reference")
    if problems:
        raise CommandRefused(422, "; ".join(problems))
