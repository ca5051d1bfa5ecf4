"""Finance's reading of the payment voucher ledger: journal lines for the ERP's voucher import (PAY-2), a
day's totals, and one order's ledger with its money.

The journal's scheme (one for every movement; the accounts are configuration, `Accounts`):

- One side is where the money is, by method class: online -> 1012.03 其他货币资金-第三方支付 (WeChat Pay,
  Alipay, a shop's gateway: held at the provider until it settles), bank_transfer -> 1002 银行存款,
  credit -> 1122 应收账款 (the buyer pays later), collected_on_behalf -> 1122.01 应收账款-平台代收 (the
  platform holds it and settles later).
- The other side is always 2203 预收账款: what the buyer has paid, or owes, against the order. The ledger
  is money, not sales: revenue (6001 主营业务收入) is recognised when the order is fulfilled, by the ERP
  from the order's own events, not here; an order paid and refunded the same day never was revenue.
  (A company that books advance receipts as 合同负债 sets the `counter` account.)
- A confirmed payment: debit the money account, credit 2203. A confirmed refund: the sides reversed.
- A reversal never edits: a movement that was confirmed and is then reversed keeps its lines (on the day
  of its confirmation) and gets a reversing pair on the day of its reversal, with the sides swapped (the
  amounts stay positive, so each column simply adds up). A movement reversed before it was confirmed
  never reached the books: nothing is journalled.
- Pending records book nothing: a transfer finance recorded is not money until confirmed against the
  statement. They show in the day's totals, by state.
- Providers' fees are not booked here: they are settled, and booked, from the settlement bills (REC-1).

Each movement is booked once, on the business date of its first confirmation, with the amount the
ledger's movements give it (`payments.ledger.movements`: the money as first reported, an Alipay refund's
step between refunded totals), so the journal agrees with the order's money to the fen. That needs every
record of the orders concerned, not only the day's: `journal_lines` and `day_totals` take them all and
keep the lines of `day`. Each line names its voucher (the record id that booked it: both lines of a pair
share it), the order, the channel's order number and the movement's own reference (a payment's
transaction id, a refund's refund id).

`day_records` reads them: the day's records (the ledger's by-day index), then the records each order
lists (one GetItem per order the day touched, a few at a time).

Amounts are integer minor units everywhere and are written as exact decimal strings in the currency's
own minor unit (fen -> "42.00"); no float touches them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from orderhub.models.order import MethodClass, MoneyKind, MoneyState, Order
from orderhub.money import exponent
from orderhub.payments.ledger import LedgerRecord, Movement, money, movements

COUNTER_ACCOUNT = "2203 预收账款"
METHOD_ACCOUNTS: Mapping[MethodClass, str] = {
    MethodClass.ONLINE: "1012.03 其他货币资金-第三方支付",
    MethodClass.BANK_TRANSFER: "1002 银行存款",
    MethodClass.CREDIT: "1122 应收账款",
    MethodClass.COLLECTED_ON_BEHALF: "1122.01 应收账款-平台代收",
}
ACCOUNTS_ENV = "ORDERHUB_JOURNAL_ACCOUNTS"  # JSON: {"online": "...", ..., "counter": "..."}; omitted keys: defaults

# The summary's Chinese half: who moved the money, and which way.
PROVIDER_NAMES: Mapping[str, str] = {
    "wechatpay": "微信支付", "alipay": "支付宝", "bank": "银行转账", "credit": "赊销", "mall": "商城",
    "taobao": "淘宝", "tmall": "天猫", "jd": "京东", "pdd": "拼多多", "douyin": "抖音", "youzan": "有赞",
    "shopify": "Shopify", "woocommerce": "WooCommerce",
}
KIND_NAMES: Mapping[MoneyKind, str] = {MoneyKind.PAYMENT: "收款", MoneyKind.REFUND: "退款"}
REVERSAL = "冲销"

CSV_COLUMNS = ("date", "voucher", "summary", "account", "debit", "credit", "currency", "order_id",
               "channel_order_id", "transaction_id")


@dataclass(frozen=True)
class Accounts:
    """The chart-of-accounts codes the journal books to."""

    by_method: Mapping[MethodClass, str]
    counter: str

    def of(self, method: MethodClass) -> str:
        return self.by_method[method]


DEFAULT_ACCOUNTS = Accounts(by_method=METHOD_ACCOUNTS, counter=COUNTER_ACCOUNT)


def accounts_from(document: Mapping[str, Any] | None) -> Accounts:
    """Accounts from configuration (`{"bank_transfer": "1002.01 银行存款-工行", "counter": "2205 合同负债"}`):
    what it names replaces the default, an unknown key or an empty account is refused (ValueError)."""
    document = document or {}
    known = {m.value for m in MethodClass} | {"counter"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ValueError(f"unknown journal account keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    for key, value in document.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"journal account {key} must be a non-empty text")
    by_method = {m: str(document.get(m.value, METHOD_ACCOUNTS[m])).strip() for m in MethodClass}
    return Accounts(by_method=by_method, counter=str(document.get("counter", COUNTER_ACCOUNT)).strip())


def accounts_from_env() -> Accounts:
    text = os.environ.get(ACCOUNTS_ENV, "")
    return accounts_from(json.loads(text)) if text.strip() else DEFAULT_ACCOUNTS


def parse_day(text: str) -> str:
    """A business day as the API and the CLI take it: YYYY-MM-DD, a real date (ValueError otherwise)."""
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ValueError(f"{value[:40]!r} is not a date (YYYY-MM-DD, the business day)")


def major(amount: int, currency: str) -> str:
    """12345, "CNY" -> "123.45"; exact, in the currency's own minor unit (JPY: "12345")."""
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    if digits == 0:
        return f"{sign}{abs(amount)}"
    whole, part = divmod(abs(amount), 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}"


HISTORY_READERS = 8  # orders read at once for a day's history (each one GetItem; the client is thread-safe)


class RecordReader(Protocol):
    """What finance reads of the ledger (`orderhub.store.ledger.DynamoLedger`): a day's records from its
    index, an order's by the record ids the order lists (the table has no index by order)."""

    def records_of_day(self, business_date: str) -> list[LedgerRecord]: ...

    def records_of_order(self, order_id: str, record_ids: Iterable[str] | None = None) -> list[LedgerRecord]: ...


class OrderReader(Protocol):
    def get_order(self, order_id: str) -> Order | None: ...


def order_records(ledger: RecordReader, order: Order) -> list[LedgerRecord]:
    """The ledger's records of the order (who reported each, when it was booked, who recorded it)."""
    return ledger.records_of_order(order.order_id, list(order.ledger))


def day_records(ledger: RecordReader, orders: OrderReader, day: str) -> list[LedgerRecord]:
    """The records `journal_lines` and `day_totals` need for `day`: the day's (the ledger's index), and the
    other records of each order they name (a first confirmation may be on an earlier day, a reversal may
    undo a booking of another day), as the order lists them: one read per order, no payloads."""
    of_day = ledger.records_of_day(day)
    order_ids = sorted({r.order_id for r in of_day})
    if not order_ids:
        return []
    with ThreadPoolExecutor(max_workers=min(HISTORY_READERS, len(order_ids))) as pool:
        found = list(pool.map(orders.get_order, order_ids))
    held = {(r.order_id, r.record_id): r for r in of_day}
    for order in found:
        if order is None:  # booked, the order's first write still to come: its day records are all there is
            continue
        for rid, line in order.ledger.items():
            held.setdefault((order.order_id, rid), LedgerRecord(
                line=line, order_id=order.order_id, channel=order.channel, channel_order_id=order.channel_order_id,
                source="", source_event_id="", booked_at=""))
    return [held[key] for key in sorted(held)]


@dataclass(frozen=True)
class JournalLine:
    date: str  # business date, YYYY-MM-DD
    voucher: str  # the record id that booked the pair
    summary: str
    account: str
    debit: int  # minor units; 0 on the credit line
    credit: int
    currency: str
    order_id: str
    channel_order_id: str
    transaction_id: str  # the movement's own reference (a payment's transaction id, a refund's refund id)


@dataclass(frozen=True)
class _Step:
    """The first record of one state of one movement, with the movement as all its records say."""

    record: LedgerRecord
    movement: Movement
    was_confirmed: bool  # the movement has a confirmed record (a reversal then undoes a booking)

    @property
    def date(self) -> str:
        return self.record.line.business_date


def _steps(records: Iterable[LedgerRecord]) -> list[_Step]:
    by_order: dict[str, dict[str, LedgerRecord]] = {}
    for record in records:
        by_order.setdefault(record.order_id, {}).setdefault(record.record_id, record)
    steps = []
    for held in by_order.values():
        moves = {m.entry_id: m for m in movements({rid: r.line for rid, r in held.items()})}
        first: dict[tuple[str, MoneyState], LedgerRecord] = {}
        for record in sorted(held.values(), key=lambda r: (r.line.occurred_at, r.record_id)):
            first.setdefault((record.line.entry_id, record.line.state), record)
        confirmed = {entry for entry, state in first if state is MoneyState.CONFIRMED}
        steps += [_Step(record, moves[entry], entry in confirmed) for (entry, _), record in first.items()]
    steps.sort(key=lambda s: (s.date, s.record.line.occurred_at, s.record.record_id))
    return steps


def summary(movement: Movement, reversal: bool = False) -> str:
    """"微信支付收款 payment wechatpay 4200..." (a reversal: "冲销 ... reversal of payment ...")."""
    chinese = PROVIDER_NAMES.get(movement.provider, movement.provider) + KIND_NAMES[movement.kind]
    english = f"{movement.kind.value} {movement.provider} {movement.reference}"
    return f"{REVERSAL} {chinese} reversal of {english}" if reversal else f"{chinese} {english}"


def _pair(step: _Step, accounts: Accounts, reversal: bool) -> list[JournalLine]:
    m, record = step.movement, step.record
    money_account, counter = accounts.of(m.method), accounts.counter
    # A payment brings money in (debit where it is); a refund sends it out; a reversal undoes either.
    debit_money = (m.kind is MoneyKind.PAYMENT) != reversal
    debit_account, credit_account = (money_account, counter) if debit_money else (counter, money_account)
    common = {"date": step.date, "voucher": record.record_id, "summary": summary(m, reversal),
              "currency": m.currency, "order_id": record.order_id, "channel_order_id": record.channel_order_id,
              "transaction_id": m.reference}
    return [JournalLine(account=debit_account, debit=m.amount, credit=0, **common),
            JournalLine(account=credit_account, debit=0, credit=m.amount, **common)]


def journal_lines(records: Iterable[LedgerRecord], day: str | None = None,
                  accounts: Accounts = DEFAULT_ACCOUNTS) -> list[JournalLine]:
    """The journal of `day` (every day: None). `records`: every record of each order concerned (a day's
    records and `records_of_order` of each order they name), so that a movement is booked once, on its
    first confirmation, and a reversal is known to undo a booking or not."""
    lines: list[JournalLine] = []
    for step in _steps(records):
        if (day is not None and step.date != day) or step.movement.amount <= 0:
            continue
        state = step.record.line.state
        if state is MoneyState.CONFIRMED:
            lines += _pair(step, accounts, reversal=False)
        elif state is MoneyState.REVERSED and step.was_confirmed:
            lines += _pair(step, accounts, reversal=True)
    return lines


def _safe_cell(text: str) -> str:
    """A text cell Excel will not run as a formula (a reference beginning with '=', '+', '-' or '@')."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def journal_csv(lines: Sequence[JournalLine]) -> bytes:
    """The lines as CSV (RFC 4180, CRLF), UTF-8 with a byte-order mark: Excel in a Chinese locale reads a
    CSV without one in the ANSI code page (GBK) and shows the summaries and accounts as mojibake; with the
    BOM it reads UTF-8, and the ERP's voucher import (and Python's utf-8-sig) takes it as well. Amounts are
    exact decimal strings; the side a line does not use is empty. Long references stay text only when the
    file is imported as text (Excel's Data > From Text/CSV), never opened and saved again."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        writer.writerow([line.date, _safe_cell(line.voucher), _safe_cell(line.summary), _safe_cell(line.account),
                         major(line.debit, line.currency) if line.debit else "",
                         major(line.credit, line.currency) if line.credit else "", line.currency,
                         _safe_cell(line.order_id), _safe_cell(line.channel_order_id), _safe_cell(line.transaction_id)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


@dataclass(frozen=True)
class DayTotal:
    """What moved on a day in one currency, method class, direction and state: how many movements, how much."""

    currency: str
    method: MethodClass
    kind: MoneyKind
    state: MoneyState
    count: int
    amount: int

    def as_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "method": self.method.value, "kind": self.kind.value,
                "state": self.state.value, "count": self.count, "amount": self.amount,
                "amount_text": major(self.amount, self.currency)}


_STATE_ORDER = {MoneyState.PENDING: 0, MoneyState.CONFIRMED: 1, MoneyState.REVERSED: 2}


def day_totals(records: Iterable[LedgerRecord], day: str | None = None) -> list[DayTotal]:
    """Per (currency, method class, kind, state): the movements that reached that state on `day` (each
    once, on its first record of the state) and their amounts. `records` as for `journal_lines`."""
    sums: dict[tuple[str, MethodClass, MoneyKind, MoneyState], tuple[int, int]] = {}
    for step in _steps(records):
        if day is not None and step.date != day:
            continue
        m = step.movement
        key = (m.currency, m.method, m.kind, step.record.line.state)
        count, amount = sums.get(key, (0, 0))
        sums[key] = (count + 1, amount + m.amount)
    methods = list(MethodClass)
    return [DayTotal(c, method, kind, state, n, amount) for (c, method, kind, state), (n, amount) in
            sorted(sums.items(), key=lambda kv: (kv[0][0], methods.index(kv[0][1]), kv[0][2] is MoneyKind.REFUND,
                                                  _STATE_ORDER[kv[0][3]]))]


def day_view(day: str, records: Iterable[LedgerRecord]) -> dict[str, Any]:
    """`GET /ledger/days/{date}`: the day's totals, and the confirmed net per currency (payments less refunds)."""
    totals = day_totals(records, day)
    net: dict[str, int] = {}
    for t in totals:
        if t.state is MoneyState.CONFIRMED:
            net[t.currency] = net.get(t.currency, 0) + (t.amount if t.kind is MoneyKind.PAYMENT else -t.amount)
    return {"date": day, "totals": [t.as_dict() for t in totals],
            "confirmed_net": [{"currency": c, "amount": n, "amount_text": major(n, c)} for c, n in sorted(net.items())]}


def order_view(order: Order, records: Sequence[LedgerRecord] = ()) -> dict[str, Any]:
    """`GET /ledger/orders/{id}` and `orderhub ledger show`: the order's movements with their states and
    records (by id; who reported each, when it was booked, who recorded it, when the ledger was read too),
    and its money. A record the ledger holds that the order does not list yet (booked, the order's write
    still to come) is shown and counted: the ledger is the books."""
    lines = dict(order.ledger)
    for record in records:
        if record.order_id == order.order_id:
            lines.setdefault(record.record_id, record.line)
    held = {r.record_id: r for r in records}
    books = money(lines, order.currency)

    def record_view(record_id: str) -> dict[str, Any]:
        line = lines[record_id]
        view: dict[str, Any] = {"record_id": record_id, "state": line.state.value, "occurred_at": line.occurred_at,
                                "business_date": line.business_date, "amount": line.amount, "note": line.note,
                                "on_order": record_id in order.ledger}
        kept = held.get(record_id)
        if kept is not None:
            view |= {"source": kept.source, "source_event_id": kept.source_event_id, "booked_at": kept.booked_at,
                     "actor": kept.actor}
        return view

    return {
        "order_id": order.order_id, "channel": order.channel, "channel_order_id": order.channel_order_id,
        "currency": order.currency, "total_amount": order.total_amount,
        "money": {"paid": books.paid, "refunded": books.refunded, "net": books.net, "pending_in": books.pending_in,
                  "pending_out": books.pending_out, "currencies": list(books.currencies)},
        "movements": [{"entry_id": m.entry_id, "provider": m.provider, "kind": m.kind.value,
                       "reference": m.reference, "state": m.state.value, "amount": m.amount, "currency": m.currency,
                       "method": m.method.value, "payment_reference": m.payment_reference,
                       "occurred_at": m.occurred_at, "business_date": m.business_date, "conflicting": m.conflicting,
                       "records": [record_view(rid) for rid in sorted(m.records, key=lambda r: lines[r].occurred_at)]}
                      for m in movements(lines, order.currency)],
    }
