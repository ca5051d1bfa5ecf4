"""The matcher (REC-2/3): the payment voucher ledger against one statement, every line to one outcome.

Both sides are reduced to plain rows first: ledger movements (`LedgerRow`, from the ledger's records as
`payments.ledger.movements` reads them) and statement lines (`statements.StatementLine`). Then, in
passes, each pass taking only what the earlier ones left:

1. **transaction id**: a statement line whose provider transaction (or refund) id is a movement's
   reference. One line, one movement; a second line with the same id is a DUPLICATE.
2. **order number + type**: what is left, grouped by (merchant order number, payment|refund) on both sides;
   a group is matched when its sums agree, whatever the split (one-to-one, one-to-many, many-to-one:
   split and combined settlements), and AMOUNT_DIFFERS when they do not.
3. **amount + time window + remark**: a bank line with no ids, matched to a movement of the same amount
   and currency within the window whose order number (or reference) the line's remark contains; only a
   unique candidate is taken.

What is still left is MISSING_IN_LEDGER (the statement has it, the hub does not) or MISSING_IN_STATEMENT.
Every difference gets exactly one label from a closed set (`Label`), by rules on what the two sides say:
never dropped, UNCLASSIFIED when no rule explains it. Pure: the same inputs in any order give the same
result (rows are sorted before matching, candidates are taken in a total order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from orderhub.reconciliation.statements import LineKind, StatementLine


class Outcome(StrEnum):
    MATCHED = "matched"
    AMOUNT_DIFFERS = "amount_differs"
    MISSING_IN_LEDGER = "missing_in_ledger"  # the statement has it; the hub never booked it
    MISSING_IN_STATEMENT = "missing_in_statement"  # the hub booked it; the statement does not have it
    DUPLICATE = "duplicate"  # the statement (or a callback) has it twice


class Label(StrEnum):
    """Why a difference is there (REC-3): one per difference, from this closed set."""

    CALLBACK_DELAYED = "callback_delayed"  # money the statement shows, whose callback the hub has not had
    DUPLICATE_NOTIFICATION = "duplicate_notification"  # the same movement twice on the statement
    REFUND_NOT_SYNCED = "refund_not_synced"  # a refund on one side only
    DISCOUNT_NOT_BOOKED = "discount_not_booked"  # the statement settled less than the hub booked: a coupon
    FEE = "fee"  # the difference is the provider's fee (or commission)
    LOGISTICS_COMPENSATION_PENDING = "logistics_compensation_pending"  # a carrier's compensation, not yet booked
    CROSS_DAY_TIMING = "cross_day_timing"  # booked on one business day, settled on the next (the midnight cut)
    FX = "fx"  # the two sides are in different currencies
    UNCLASSIFIED = "unclassified"


KIND_OF_LINE = {LineKind.PAYMENT: "payment", LineKind.REFUND: "refund"}


@dataclass(frozen=True)
class LedgerRow:
    """One ledger movement as the matcher sees it (confirmed or pending; reversed ones are left out)."""

    entry_id: str
    kind: str  # payment | refund
    reference: str  # the provider's transaction id (payment) or refund id (refund)
    order_ref: str  # the merchant's order number
    amount: int
    currency: str
    occurred_at: str  # UTC ISO
    payment_reference: str = ""  # a refund: the payment it returns
    merchant_reference: str = ""  # out_refund_no / out_biz_no for a refund
    pending: bool = False


@dataclass(frozen=True)
class Difference:
    outcome: Outcome
    label: Label
    ledger: tuple[str, ...]  # entry ids
    statement: tuple[int, ...]  # statement line numbers
    ledger_amount: int
    statement_amount: int
    currency: str
    order_ref: str = ""
    reference: str = ""
    note: str = ""
    ledger_currency: str = ""  # when the sides are in different currencies (FX): each side's own
    statement_currency: str = ""

    @property
    def amount(self) -> int | None:
        """Statement less ledger: what the books must move to agree (a journal line's amount); None when the
        sides are in different currencies (no difference can be taken without a rate)."""
        if self.ledger_currency and self.statement_currency and self.ledger_currency != self.statement_currency:
            return None
        return self.statement_amount - self.ledger_amount


@dataclass(frozen=True)
class Match:
    by: str  # transaction_id | order_and_type | amount_time_remark
    ledger: tuple[str, ...]
    statement: tuple[int, ...]
    amount: int
    currency: str


@dataclass
class Result:
    matches: list[Match] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    def outcome_of_line(self) -> dict[int, Outcome]:
        """Every statement line's outcome (each line has exactly one)."""
        out = {n: Outcome.MATCHED for m in self.matches for n in m.statement}
        for d in self.differences:
            for n in d.statement:
                out[n] = d.outcome
        return out

    def outcome_of_entry(self) -> dict[str, Outcome]:
        out = {e: Outcome.MATCHED for m in self.matches for e in m.ledger}
        for d in self.differences:
            for e in d.ledger:
                out[e] = d.outcome
        return out


@dataclass(frozen=True)
class Settings:
    window: timedelta = timedelta(minutes=30)  # pass 3: how far apart a bank line and its movement may be
    business_tz: str = "Asia/Shanghai"
    cut_margin: timedelta = timedelta(minutes=10)  # this close to the business day's midnight: cross-day timing


def match(ledger: Iterable[LedgerRow], statement: Iterable[StatementLine], settings: Settings = Settings()) -> Result:
    rows = sorted(ledger, key=lambda r: (r.occurred_at, r.entry_id))
    lines = sorted(statement, key=lambda li: (li.line_no, li.source))
    result = Result()
    left_rows = {r.entry_id: r for r in rows}
    left_lines = {li.line_no: li for li in lines}
    _by_transaction_id(left_rows, left_lines, result)
    _by_order_and_type(left_rows, left_lines, result)
    _by_amount_time_remark(left_rows, left_lines, result, settings)
    for line in left_lines.values():
        result.differences.append(_missing_in_ledger(line))
    for row in left_rows.values():
        result.differences.append(_missing_in_statement(row, settings))
    return result


def _line_kind(line: StatementLine) -> str:
    return KIND_OF_LINE.get(line.kind, "other")


def _ids_of(line: StatementLine) -> tuple[str, ...]:
    if line.kind is LineKind.REFUND:
        return tuple(i for i in (line.refund_id,) if i)
    return tuple(i for i in (line.transaction_id,) if i)


def _by_transaction_id(rows: dict[str, LedgerRow], lines: dict[int, StatementLine], result: Result) -> None:
    by_reference: dict[tuple[str, str], LedgerRow] = {}
    for row in rows.values():
        by_reference[(row.kind, row.reference)] = row
        if row.kind == "refund" and row.merchant_reference:
            by_reference.setdefault((row.kind, row.merchant_reference), row)
    taken: dict[str, int] = {}
    for line in list(lines.values()):
        kind = _line_kind(line)
        for ref in _ids_of(line):
            found = by_reference.get((kind, ref))
            if found is None:
                continue
            row = found
            if row.entry_id in taken:  # a second line for a movement already matched: the statement has it twice
                result.differences.append(Difference(
                    Outcome.DUPLICATE, Label.DUPLICATE_NOTIFICATION, (), (line.line_no,), 0, line.amount,
                    line.currency, line.order_ref, ref, f"also line {taken[row.entry_id]}"))
                del lines[line.line_no]
                break
            taken[row.entry_id] = line.line_no
            del lines[line.line_no]
            rows.pop(row.entry_id, None)
            if row.amount == line.amount and row.currency == line.currency:
                result.matches.append(Match("transaction_id", (row.entry_id,), (line.line_no,), row.amount,
                                            row.currency))
            else:
                result.differences.append(_amount_differs((row,), (line,), ref))
            break


def _by_order_and_type(rows: dict[str, LedgerRow], lines: dict[int, StatementLine], result: Result) -> None:
    groups_rows: dict[tuple[str, str], list[LedgerRow]] = {}
    for row in rows.values():
        if row.order_ref:
            groups_rows.setdefault((row.order_ref, row.kind), []).append(row)
    groups_lines: dict[tuple[str, str], list[StatementLine]] = {}
    for line in lines.values():
        if line.order_ref:
            groups_lines.setdefault((line.order_ref, _line_kind(line)), []).append(line)
    for key in sorted(groups_rows.keys() & groups_lines.keys()):
        side_rows, side_lines = groups_rows[key], groups_lines[key]
        for row in side_rows:
            rows.pop(row.entry_id)
        for line in side_lines:
            lines.pop(line.line_no)
        booked, settled = sum(r.amount for r in side_rows), sum(li.amount for li in side_lines)
        currencies = {r.currency for r in side_rows} | {li.currency for li in side_lines}
        if booked == settled and len(currencies) == 1:
            result.matches.append(Match("order_and_type", tuple(r.entry_id for r in side_rows),
                                        tuple(li.line_no for li in side_lines), booked, currencies.pop()))
        else:
            result.differences.append(_amount_differs(tuple(side_rows), tuple(side_lines), key[0]))


def _by_amount_time_remark(rows: dict[str, LedgerRow], lines: dict[int, StatementLine], result: Result,
                           settings: Settings) -> None:
    for line in list(lines.values()):
        at = datetime.fromisoformat(line.occurred_at)
        kind = _line_kind(line)
        candidates = [
            r for r in rows.values()
            if r.kind == kind and r.amount == line.amount and r.currency == line.currency
            and abs(datetime.fromisoformat(r.occurred_at) - at) <= settings.window
            and any(ref and ref in line.remark for ref in (r.order_ref, r.reference))]
        if len(candidates) != 1:
            continue  # none, or more than one: never guessed
        (row,) = candidates
        del lines[line.line_no]
        rows.pop(row.entry_id)
        result.matches.append(Match("amount_time_remark", (row.entry_id,), (line.line_no,), row.amount, row.currency))


def _amount_differs(rows: Sequence[LedgerRow], lines: Sequence[StatementLine], reference: str) -> Difference:
    booked, settled = sum(r.amount for r in rows), sum(li.amount for li in lines)
    currencies = sorted({r.currency for r in rows} | {li.currency for li in lines})
    fees = [li.fee for li in lines if li.fee is not None]
    kind = rows[0].kind if rows else (_line_kind(lines[0]) if lines else "")
    if len(currencies) > 1:
        label, note = Label.FX, f"ledger in {', '.join(sorted({r.currency for r in rows}))}, statement in " \
                                f"{', '.join(sorted({li.currency for li in lines}))}"
    elif fees and booked - settled == sum(fees):
        label, note = Label.FEE, "the difference is the provider's fee"
    elif kind == "refund":
        label, note = Label.REFUND_NOT_SYNCED, "refunded amounts differ"
    elif settled < booked:
        label, note = Label.DISCOUNT_NOT_BOOKED, "settled less than booked: a discount the hub did not book"
    else:
        label, note = Label.UNCLASSIFIED, "settled more than booked"
    ledger_currencies = sorted({r.currency for r in rows})
    statement_currencies = sorted({li.currency for li in lines})
    return Difference(Outcome.AMOUNT_DIFFERS, label, tuple(r.entry_id for r in rows), tuple(li.line_no for li in lines),
                      booked, settled, currencies[0] if currencies else "",
                      rows[0].order_ref if rows else lines[0].order_ref, reference, note,
                      ",".join(ledger_currencies), ",".join(statement_currencies))


def _missing_in_ledger(line: StatementLine) -> Difference:
    if line.kind is LineKind.REFUND:
        label, note = Label.REFUND_NOT_SYNCED, "a refund the hub has not booked"
    elif line.kind is LineKind.FEE:
        label, note = Label.FEE, "a fee line"
    elif line.kind is LineKind.PAYMENT:
        label, note = Label.CALLBACK_DELAYED, "money the provider settled whose callback the hub has not had"
    else:
        label, note = Label.UNCLASSIFIED, "a statement line of no known kind"
    return Difference(Outcome.MISSING_IN_LEDGER, label, (), (line.line_no,), 0, line.amount, line.currency,
                      line.order_ref, line.transaction_id or line.refund_id, note)


def _missing_in_statement(row: LedgerRow, settings: Settings) -> Difference:
    local = datetime.fromisoformat(row.occurred_at).astimezone(ZoneInfo(settings.business_tz))
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight - local <= settings.cut_margin or local - local.replace(hour=0, minute=0, second=0,
                                                                          microsecond=0) <= settings.cut_margin:
        label, note = Label.CROSS_DAY_TIMING, "booked next to the business day's midnight: expected on the next bill"
    elif row.kind == "refund":
        label, note = Label.REFUND_NOT_SYNCED, "a refund the statement does not have"
    else:
        label, note = Label.UNCLASSIFIED, "booked, not on the statement"
    return Difference(Outcome.MISSING_IN_STATEMENT, label, (row.entry_id,), (), row.amount, 0, row.currency,
                      row.order_ref, row.reference, note)
