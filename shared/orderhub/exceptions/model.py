"""What an exception is: its type, the rule that found it, its state, its id; SLA timers and slots.

An exception is identified by its order and its key `<rule>.<episode>`: the episode names the
occurrence of the rule's condition (the instant it began, e.g. the payment time, or for unknown
SKUs a digest of them). Raising the same occurrence again is a no-op (a conditional put on the
key); the condition holding again later, as a new occurrence, is a new exception: a recurrence.

The exception id is `<order_id>~<key>`, URL-safe (order ids are `oh_` + base32, keys are
letters, digits, `_`, `.` and `-`), so the API needs no index to find one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, computed_field

from orderhub.clock import utc_iso


class ExceptionType(StrEnum):
    PAYMENT = "payment"
    LOGISTICS = "logistics"
    PRODUCT = "product"
    RISK = "risk"


class ExceptionState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


UNRESOLVED = (ExceptionState.OPEN, ExceptionState.ACKNOWLEDGED)


class Rule(StrEnum):
    """The detection rules (EXC-1). Each belongs to one type, so to one owning team."""

    PAYMENT_UNCONFIRMED = "payment_unconfirmed"  # reported paid, no confirmed payment in the ledger after N min
    NOT_SHIPPED = "not_shipped"  # paid, nothing physically out after N min
    NO_OUTBOUND = "no_outbound"  # ship requested on the channel, no physical outbound after N min (ST-4)
    SHIPPED_AFTER_CANCEL = "shipped_after_cancel"  # cancelled, yet the goods left: intercept (decision 20)
    UNKNOWN_SKU = "unknown_sku"  # a line's SKU is not in the catalogue
    RISK_HOLD = "risk_hold"  # ON_HOLD for a reason other than a presale balance
    PAID_TWICE = "paid_twice"  # a second confirmed payment for one order: refund the surplus
    PAID_AFTER_CLOSE = "paid_after_close"  # money confirmed after the order was cancelled
    AMOUNT_MISMATCH = "amount_mismatch"  # a provider's confirmed amount is not the order's payable
    REFUND_WITHOUT_PAYMENT = "refund_without_payment"  # refunds beyond the confirmed payments


RULE_TYPE: dict[Rule, ExceptionType] = {
    Rule.PAYMENT_UNCONFIRMED: ExceptionType.PAYMENT,
    Rule.NOT_SHIPPED: ExceptionType.LOGISTICS,
    Rule.NO_OUTBOUND: ExceptionType.LOGISTICS,
    Rule.SHIPPED_AFTER_CANCEL: ExceptionType.LOGISTICS,
    Rule.UNKNOWN_SKU: ExceptionType.PRODUCT,
    Rule.RISK_HOLD: ExceptionType.RISK,
    Rule.PAID_TWICE: ExceptionType.PAYMENT,
    Rule.PAID_AFTER_CLOSE: ExceptionType.PAYMENT,
    Rule.AMOUNT_MISMATCH: ExceptionType.PAYMENT,
    Rule.REFUND_WITHOUT_PAYMENT: ExceptionType.PAYMENT,
}

# Who resolved an exception whose cause cleared by itself.
WATCHDOG = "sla_watchdog"


class TypeRoute(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    owner: str  # alert route of the owning team
    supervisor: str  # alert route told when the SLA is breached
    sla_minutes: Annotated[int, Field(gt=0)]


class ExceptionRules(BaseModel):
    """The `exceptions` configuration document (infra/config.py `ExceptionsConfig`), as functions read it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    payment_unconfirmed_after_min: Annotated[int, Field(gt=0)]
    not_shipped_after_min: Annotated[int, Field(gt=0)]
    no_outbound_after_min: Annotated[int, Field(gt=0)]
    known_skus: frozenset[str] = frozenset()
    types: dict[ExceptionType, TypeRoute]

    def route(self, rule: Rule) -> TypeRoute:
        return self.types[RULE_TYPE[rule]]


Text = Annotated[str, Field(max_length=1000)]


class ExceptionRecord(BaseModel):
    """One raised exception. Stored as one item of the exceptions table; no personal data."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    exception_key: str  # <rule>.<episode>
    channel: str
    channel_order_id: str
    shop_id: str = ""
    type: ExceptionType
    rule: Rule
    owner: str  # the owning team's alert route
    supervisor: str  # told on a breach
    state: ExceptionState = ExceptionState.OPEN
    since: str  # when the rule's condition began (UTC ISO)
    due_at: str  # when it became an exception by the rule's threshold
    raised_at: str  # when the watchdog raised it: the SLA clock starts here
    sla_deadline: str
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    escalated_at: str | None = None
    owner_alerted_at: str | None = None
    supervisor_alerted_at: str | None = None
    resolved_at: str | None = None
    resolved_by: str | None = None
    resolution_note: Text | None = None
    detail: dict[str, str] = Field(default_factory=dict)  # what the rule saw

    @computed_field  # type: ignore[prop-decorator]
    @property
    def exception_id(self) -> str:
        return exception_id(self.order_id, self.exception_key)

    @property
    def unresolved(self) -> bool:
        return self.state is not ExceptionState.RESOLVED


_KEY = re.compile(r"^[a-z_]+\.[A-Za-z0-9_-]{1,64}$")
_ORDER = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
ID_SEPARATOR = "~"


def exception_key(rule: Rule, episode: str) -> str:
    return f"{rule.value}.{episode}"


def exception_id(order_id: str, key: str) -> str:
    return f"{order_id}{ID_SEPARATOR}{key}"


def parse_exception_id(value: str) -> tuple[str, str] | None:
    """(order id, exception key) of a well-formed id, else None."""
    order_id, sep, key = value.partition(ID_SEPARATOR)
    if not sep or not _ORDER.match(order_id) or not _KEY.match(key):
        return None
    return order_id, key


def compact_instant(iso: str) -> str:
    """A stored UTC time as a key part: 2026-11-18T02:05:00.123+00:00 -> 20261118T020500123Z."""
    at = datetime.fromisoformat(iso).astimezone(UTC)
    return at.strftime("%Y%m%dT%H%M%S") + f"{at.microsecond // 1000:03d}Z"


class ExceptionNotFound(LookupError):
    pass


class WrongState(RuntimeError):
    """The exception is not in a state that allows the change (resolved twice, acknowledged twice)."""

    def __init__(self, record: ExceptionRecord, wanted: str) -> None:
        super().__init__(f"exception {record.exception_id} is {record.state.value}: cannot {wanted}")
        self.record = record


# ---------------------------------------------------------------------------------------- timers

SLOT = timedelta(minutes=5)
_SLOT_S = int(SLOT.total_seconds())


def slot_of(at: datetime) -> datetime:
    """The start of the 5-minute slot `at` falls in (UTC)."""
    seconds = int(at.timestamp()) // _SLOT_S * _SLOT_S
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, order=True)
class Timer:
    """Check `rule` on the order once `due_at` has passed. Same order, rule and due time: same timer."""

    order_id: str
    rule: Rule
    due_at: str  # UTC ISO (utc_iso: fixed width, so string order is time order)

    @property
    def key(self) -> str:
        return f"{self.order_id}#{self.rule.value}#{self.due_at}"

    @property
    def due(self) -> datetime:
        return datetime.fromisoformat(self.due_at)


def plus_minutes(iso: str, minutes: int) -> str:
    return utc_iso(datetime.fromisoformat(iso) + timedelta(minutes=minutes))
