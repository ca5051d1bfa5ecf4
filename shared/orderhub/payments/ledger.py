"""The payment voucher ledger as pure functions: records from facts, each movement's standing, the sums.

The ledger (PAY-2) holds one *record* per (movement, state): a WeChat Pay transaction reported
confirmed is `wechatpay:payment:<transaction_id>#confirmed`, an abnormal refund that later succeeds is
two records, `...#pending` and `...#confirmed`. Records are written once and never changed, so a
repeated or late callback writes nothing (PAY-1) and any arrival order leaves the same set. What a
movement stands at is derived from its records: reversed outranks confirmed outranks pending. A
correction is a reversal record, never an edit.

An order's money is summed from its movements: paid is the confirmed payments, refunded the confirmed
refunds, net the difference. Nothing here touches AWS; the mapper books the records
(`orderhub.store.ledger`) before the order that lists them is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from orderhub.clock import utc_iso
from orderhub.models.order import LedgerLine, MethodClass, MoneyFact, MoneyKind, MoneyState

_STATE_RANK = {MoneyState.PENDING: 0, MoneyState.CONFIRMED: 1, MoneyState.REVERSED: 2}

# The fields that say what moved; a second report of a record that differs in any of them is a conflict
# (the first stays the record). The payload and note may differ between retries of one callback. Between
# records of one movement (states, times) all but the time must agree.
MONEY_FIELDS = ("kind", "amount", "currency", "method", "occurred_at", "payment_reference", "cumulative")


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def business_date(at: datetime | str, tz: str | None = None) -> str:
    """The business day (default Asia/Shanghai) an instant belongs to: 23:59:59 CST is still today."""
    zone = tz or os.environ.get("ORDERHUB_BUSINESS_TZ", "Asia/Shanghai")
    if isinstance(at, str):
        return _day_of_iso(at, zone)  # the same instants recur in every snapshot of an order
    return at.astimezone(_zone(zone)).date().isoformat()


@lru_cache(maxsize=1024)
def _day_of_iso(at: str, zone: str) -> str:
    return datetime.fromisoformat(at).astimezone(_zone(zone)).date().isoformat()


def line_of(fact: MoneyFact) -> LedgerLine:
    at = utc_iso(fact.occurred_at)
    return LedgerLine(provider=fact.provider, kind=fact.kind, reference=fact.reference, state=fact.state,
                      amount=fact.amount, currency=fact.currency, method=fact.method, fee=fact.fee,
                      payment_reference=fact.payment_reference, merchant_reference=fact.merchant_reference,
                      occurred_at=at, business_date=business_date(fact.occurred_at), cumulative=fact.cumulative,
                      note=fact.note)


def same_money(a: LedgerLine, b: LedgerLine, with_time: bool = True) -> bool:
    """Whether two reports agree on the money (MONEY_FIELDS; "" currency: the order's, agreeing with any)."""
    return ((a.kind, a.amount, a.method, a.payment_reference, a.cumulative)
            == (b.kind, b.amount, b.method, b.payment_reference, b.cumulative)
            and (not with_time or a.occurred_at == b.occurred_at)
            and (a.currency == b.currency or not a.currency or not b.currency))


# Which channels' own "paid" and "refunded" facts are money (PAY-2). A platform collects the buyer's money
# itself and settles it later: its facts are the movements, class "collected on behalf". The merchant's own
# shop (`mall`) is paid through WeChat Pay and Alipay, whose callbacks are the movements: what the shop
# says of payment is only a claim. Other shops (WooCommerce, imported offline stores) report their own
# gateway's or till's takings: class "online".
COLLECTED_ON_BEHALF_CHANNELS = frozenset({"taobao", "tmall", "jd", "pdd", "douyin", "youzan", "shopify"})
DEFAULT_PROVIDER_CONFIRMED = "mall"


@cache
def _provider_confirmed(setting: str) -> frozenset[str]:
    return frozenset(name.strip() for name in setting.split(",") if name.strip())


def provider_confirmed_channels() -> frozenset[str]:
    """Channels whose payments only a payment provider's callback confirms (`ORDERHUB_PROVIDER_CONFIRMED`)."""
    return _provider_confirmed(os.environ.get("ORDERHUB_PROVIDER_CONFIRMED", DEFAULT_PROVIDER_CONFIRMED))


def channel_method(channel: str) -> MethodClass | None:
    """The class of the money a channel's own facts book, or None when its facts book none."""
    if channel in provider_confirmed_channels():
        return None
    if channel in COLLECTED_ON_BEHALF_CHANNELS:
        return MethodClass.COLLECTED_ON_BEHALF
    return MethodClass.ONLINE


@dataclass(slots=True)
class Movement:
    """One money movement as its records say it stands now."""

    entry_id: str
    provider: str
    kind: MoneyKind
    reference: str
    state: MoneyState
    amount: int  # the movement's own amount (an Alipay refund: its step between the refunded totals)
    currency: str
    method: MethodClass
    fee: int | None
    payment_reference: str
    merchant_reference: str
    occurred_at: str
    business_date: str
    records: tuple[str, ...]  # record ids, sorted
    conflicting: bool = False  # its records disagree on the money: the first booked stands, finance is told

    @property
    def counts(self) -> bool:
        return self.state is MoneyState.CONFIRMED


def movements(ledger: Mapping[str, LedgerLine], currency: str = "") -> list[Movement]:
    """The order's movements by (time, entry id), each at its highest state. Pure and order-independent.
    A record that names no currency (a platform's refund report) is in the order's `currency`."""
    by_entry: dict[str, list[tuple[str, LedgerLine]]] = {}
    for record_id in sorted(ledger):  # <entry id>#<state>@<time>: the entry id is before the last "#"
        by_entry.setdefault(record_id.rpartition("#")[0], []).append((record_id, ledger[record_id]))
    found: list[Movement] = []
    for entry, records in by_entry.items():
        if len(records) == 1:  # nearly every movement: reported once
            (record_id, first), = records
            found.append(Movement(
                entry, first.provider, first.kind, first.reference, first.state, first.amount,
                first.currency or currency, first.method, first.fee, first.payment_reference,
                first.merchant_reference, first.occurred_at, first.business_date, (record_id,)))
            continue
        lines = [line for _, line in records]
        top = max(lines, key=lambda li: _STATE_RANK[li.state])
        # The money is the first report's (lowest state, earliest time): a movement's amount is fixed when it
        # is first announced, and a platform reporting one refund at two times is one refund.
        first = min(lines, key=lambda li: (_STATE_RANK[li.state], li.occurred_at))
        found.append(Movement(
            entry_id=entry, provider=first.provider, kind=first.kind, reference=first.reference, state=top.state,
            amount=first.amount, currency=first.currency or currency, method=first.method,
            fee=next((li.fee for li in lines if li.fee is not None), None),
            payment_reference=first.payment_reference, merchant_reference=first.merchant_reference,
            occurred_at=first.occurred_at, business_date=first.business_date,
            records=tuple(record_id for record_id, _ in records),
            conflicting=any(not same_money(first, li, with_time=False) for li in lines)))
    _step_cumulative(found, ledger)
    found.sort(key=lambda m: (m.occurred_at, m.entry_id))
    return found


def _step_cumulative(found: list[Movement], ledger: Mapping[str, LedgerLine]) -> None:
    """Alipay reports each refund as the payment's refunded total: a refund's own amount is its total less
    the next lower total reported for the same payment (ties: by time, then id)."""
    cumulative = {li.entry_id for li in ledger.values() if li.cumulative}
    if not cumulative:
        return
    groups: dict[tuple[str, str], list[int]] = {}
    for i, m in enumerate(found):
        if m.entry_id in cumulative and m.state is not MoneyState.REVERSED:
            groups.setdefault((m.provider, m.payment_reference), []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: (found[i].amount, found[i].occurred_at, found[i].entry_id))
        below = 0
        for i in members:
            total = found[i].amount
            found[i].amount = total - below
            below = total


@dataclass(frozen=True)
class Money:
    """An order's money as its ledger says: sums over its movements."""

    paid: int = 0  # confirmed payments
    refunded: int = 0  # confirmed refunds
    pending_in: int = 0  # payments announced, not yet confirmed (a transfer finance recorded)
    pending_out: int = 0  # refunds announced, not yet confirmed (an abnormal refund)
    currencies: tuple[str, ...] = ()
    payments: tuple[Movement, ...] = field(default_factory=tuple)  # confirmed, by time
    refunds: tuple[Movement, ...] = field(default_factory=tuple)  # confirmed, by time
    confirmed: bool = False  # a confirmed payment is among them

    @property
    def net(self) -> int:
        return self.paid - self.refunded


EMPTY = Money()


def money(ledger: Mapping[str, LedgerLine], currency: str = "") -> Money:
    if not ledger:
        return EMPTY
    moves = movements(ledger, currency)
    payments = tuple(m for m in moves if m.counts and m.kind is MoneyKind.PAYMENT)
    refunds = tuple(m for m in moves if m.counts and m.kind is MoneyKind.REFUND)
    pending = [m for m in moves if m.state is MoneyState.PENDING]
    return Money(paid=sum(m.amount for m in payments), refunded=sum(m.amount for m in refunds),
                 pending_in=sum(m.amount for m in pending if m.kind is MoneyKind.PAYMENT),
                 pending_out=sum(m.amount for m in pending if m.kind is MoneyKind.REFUND),
                 currencies=tuple(sorted({m.currency for m in moves})), payments=payments, refunds=refunds,
                 confirmed=bool(payments))


def with_lines(ledger: Mapping[str, LedgerLine], lines: Iterable[LedgerLine]) -> dict[str, LedgerLine] | None:
    """`ledger` with the records of `lines` it lacks (a known record stays as it was booked); None if none
    is new."""
    added = {line.record_id: line for line in lines if line.record_id not in ledger}
    return {**ledger, **added} if added else None


@dataclass(frozen=True)
class LedgerRecord:
    """A ledger record as the payments table keeps it: the line, whose order it is, who reported it, and the
    provider's payload. Written once (conditional on its record id), never updated or deleted."""

    line: LedgerLine
    order_id: str  # the hub's order id
    channel: str  # the order's channel
    channel_order_id: str  # the merchant's order number (out_trade_no for the payment providers)
    source: str  # who reported it: wechatpay, alipay, a platform channel, finance
    source_event_id: str  # the event that reported it (its entry in the order's event log)
    booked_at: str  # hub time (UTC ISO)
    account: str = ""  # the merchant account the money went to
    payload: str = ""  # the provider's payload as the hub read it
    actor: str = ""  # who recorded it, when a person did (a bank transfer finance recorded)

    @property
    def record_id(self) -> str:
        return self.line.record_id


class Ledger(Protocol):
    """The payment voucher ledger's storage (orderhub.store.ledger.DynamoLedger; in memory for tests)."""

    def book(self, records: Sequence[LedgerRecord]) -> dict[str, LedgerLine]:
        """Write each record unless its record id is already there. Returns, by record id, the line the
        ledger holds: the one just written, or the one found (which may disagree on the money: a conflict)."""
        ...

    def records_of_order(self, order_id: str, record_ids: Iterable[str] | None = None) -> list[LedgerRecord]:
        """The order's records (those of `record_ids` when given: the order lists its own)."""
        ...

    def records_of_day(self, business_date: str) -> list[LedgerRecord]:
        """The day's records; payloads may come back "" (the day index does not copy them)."""
        ...


class InMemoryLedger:
    """The same contract in a dict: for unit tests and CPU benchmarks."""

    def __init__(self) -> None:
        self.records: dict[str, LedgerRecord] = {}

    def book(self, records: Sequence[LedgerRecord]) -> dict[str, LedgerLine]:
        held = {}
        for record in records:
            kept = self.records.setdefault(record.record_id, record)
            held[record.record_id] = kept.line
        return held

    def records_of_order(self, order_id: str, record_ids: Iterable[str] | None = None) -> list[LedgerRecord]:
        wanted = set(record_ids) if record_ids is not None else None
        return sorted((r for r in self.records.values()
                       if r.order_id == order_id and (wanted is None or r.record_id in wanted)),
                      key=lambda r: r.record_id)

    def records_of_day(self, business_date: str) -> list[LedgerRecord]:
        return sorted((r for r in self.records.values() if r.line.business_date == business_date),
                      key=lambda r: r.record_id)
