"""SWIFT MT940 customer statements -> statement lines, checked against their own balances (REC-1).

The tags are read by the `mt-940` package (imported when a statement is read, not when this module is:
the handlers that never read one pay nothing at cold start). Each `:61:` statement line becomes a line:
its debit/credit mark gives the direction (C and RD put money in, D and RC take it out), its amount is read
exactly, its entry date (the value date where the entry date is absent) is the bank's local midnight as
UTC, its bank reference (after `//`) is the transaction id, its customer reference the order reference
(unless it is SWIFT's NONREF), and the `:86:` that follows it is the remark.

A file is used only whole: every `:61:` must have been read (a line the package could not parse is a
refusal, not a gap), every amount must be exact in the statement's currency, and for every statement the
opening balance (`:60F:`) plus its lines must come to the closing balance (`:62F:`).
"""

from __future__ import annotations

import re
from typing import Any

from orderhub.reconciliation.formats._bank import DEFAULT_BANK_TZ, AmountError, bank_zone, minor_units, utc_iso
from orderhub.reconciliation.statements import LineKind, Statement, StatementLine, StatementRefused

_STATEMENT_START = re.compile(r"^:20:", re.MULTILINE)
_MONEY_IN = {"C": True, "RD": True, "D": False, "RC": False}


def read_mt940(data: bytes | str, *, bank: str, tz: str = DEFAULT_BANK_TZ,
               money_out: LineKind = LineKind.OTHER) -> Statement:
    """Read an MT940 file (one or more statements) whole, or refuse it with the line and the reason.

    `money_out` is the kind a debit becomes (OTHER, or REFUND for an account that only pays refunds out).
    """
    import mt940  # cold start: only a reader of MT940 loads the package

    source = f"bank:{bank}"
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    zone = bank_zone(tz)
    line_of_61 = [number for number, row in enumerate(text.split("\n"), start=1) if row.startswith(":61:")]
    blocks = [m.start() for m in _STATEMENT_START.finditer(text)]
    if not blocks:
        raise StatementRefused(source, 1, "no :20: statement in the file")
    try:
        statements = mt940.parse_statements(text)
    except Exception as exc:  # the package raises plain exceptions of several kinds on malformed tags
        # Its message quotes the tag's text (names, accounts): say where, not what.
        value = exc.args[2] if len(exc.args) > 2 and isinstance(exc.args[2], str) else ""
        at = text.find(value) if value else -1
        line_no = text.count("\n", 0, at) + 1 if at >= 0 else 1
        raise StatementRefused(source, line_no, "a tag that is not valid MT940") from exc

    lines: list[StatementLine] = []
    totals: dict[str, int] = {}
    periods: list[str] = []
    cursor = 0
    for number, statement in enumerate(statements, start=1):
        start_line = text.count("\n", 0, blocks[number - 1]) + 1 if number <= len(blocks) else 1
        opening, closing = _balance(statement.data, "final_opening_balance", source, start_line), \
            _balance(statement.data, "final_closing_balance", source, start_line)
        currency = opening[1]
        if closing[1] != currency:
            raise StatementRefused(source, start_line, f"closing balance in {closing[1]}, opening in {currency}")
        moved = 0
        for transaction in statement:
            if cursor >= len(line_of_61):
                raise StatementRefused(source, start_line, "the package read more :61: lines than the file has")
            line_no = line_of_61[cursor]
            cursor += 1
            line = _line(transaction.data, currency, source, line_no, zone, money_out)
            moved += line.amount if _MONEY_IN[str(transaction.data.get("status", "")).upper()] else -line.amount
            lines.append(line)
        if opening[0] + moved != closing[0]:
            closing_at = text.find(":62F:", blocks[number - 1]) if number <= len(blocks) else -1
            raise StatementRefused(
                source, text.count("\n", 0, closing_at) + 1 if closing_at >= 0 else start_line,
                f"statement {statement.data.get('transaction_reference', number)}: opening {opening[0]} + lines "
                f"{moved} != closing {closing[0]} ({currency} minor units)")
        ref = str(statement.data.get("transaction_reference") or number)
        totals[f"{ref}:opening"], totals[f"{ref}:closing"] = opening[0], closing[0]
        periods.append(f"{opening[2]}..{closing[2]}")
    if cursor != len(line_of_61):
        missing = line_of_61[cursor] if cursor < len(line_of_61) else len(line_of_61)
        raise StatementRefused(source, missing, "a :61: statement line could not be read")
    return Statement(source=source, lines=tuple(lines), stated_totals=totals, period=", ".join(periods))


def _balance(data: dict[str, Any], key: str, source: str, line_no: int) -> tuple[int, str, str]:
    balance = data.get(key)
    if balance is None:
        tag = ":60F:" if "opening" in key else ":62F:"
        raise StatementRefused(source, line_no, f"no {tag} balance")
    currency = str(balance.amount.currency or "")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise StatementRefused(source, line_no, f"balance without an ISO currency: {currency!r}")
    try:
        amount = minor_units(format(balance.amount.amount, "f"), currency)
    except AmountError as exc:
        raise StatementRefused(source, line_no, str(exc)) from exc
    return amount, currency, balance.date.isoformat()


def _line(data: dict[str, Any], currency: str, source: str, line_no: int, zone: Any,
          money_out: LineKind) -> StatementLine:
    status = str(data.get("status", "")).upper()
    if status not in _MONEY_IN:
        raise StatementRefused(source, line_no, f"unknown debit/credit mark {status!r}")
    line_currency = str(data.get("currency") or currency)
    if line_currency != currency:
        raise StatementRefused(source, line_no, f"line in {line_currency}, statement in {currency}")
    try:
        amount = abs(minor_units(format(data["amount"].amount, "f"), currency))
    except AmountError as exc:
        raise StatementRefused(source, line_no, str(exc)) from exc
    if amount == 0:
        raise StatementRefused(source, line_no, "a line of zero")
    booked = data.get("entry_date") or data["date"]
    customer_ref = str(data.get("customer_reference") or "").strip()
    raw = {k: str(v) for k, v in data.items() if v not in (None, "")}
    return StatementLine(
        source=source, line_no=line_no,
        kind=LineKind.PAYMENT if _MONEY_IN[status] else money_out,
        amount=amount, currency=currency,
        occurred_at=utc_iso(booked, None, zone),
        transaction_id=str(data.get("bank_reference") or "").strip(),
        order_ref="" if customer_ref.upper() == "NONREF" else customer_ref,
        remark=" ".join(str(data.get("transaction_details") or "").split()),
        raw=raw,
    )
