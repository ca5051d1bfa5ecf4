"""ISO 20022 camt.053 bank-to-customer statements -> statement lines, checked against their balances (REC-1).

Read with the standard library's ElementTree, safely: a document with a DOCTYPE is refused before it is
parsed, so no entity can be declared (no external entity is fetched, no "billion laughs" expands), and
the text must be UTF-8 as ISO 20022 messages are. Versions camt.053.001.02 to .08 are read; their
namespaces differ, the elements used here do not (where .08 moved the entry status into `Sts/Cd` and a
party's name into `Pty/Nm`, both places are read).

Each booked `Ntry` is one line: `Amt@Ccy` exactly, `CdtDbtInd` CRDT -> payment, DBIT -> the configured
money-out kind; `BookgDt` (else `ValDt`) as UTC (a date alone is the bank's local midnight); `AcctSvcrRef`
(the entry's, else its transaction's) is the transaction id; `NtryDtls/TxDtls/Refs/EndToEndId` the order
reference (unless NOTPROVIDED); `RmtInf/Ustrd` the remark; the debtor's (credit) or creditor's (debit)
name the counterparty. A batch entry with several transaction details is still one line (its end-to-end
ids joined by a space): the bank booked one amount. For each `Stmt`, the opening booked balance (OPBD)
plus its entries must come to the closing booked balance (CLBD), all in one currency; an entry that is
not booked (camt.053 reports booked entries; a PDNG one means the file is not a statement) is refused.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - a DOCTYPE is refused before parsing (see `_root`)
from datetime import date, datetime
from zoneinfo import ZoneInfo

from orderhub.reconciliation.formats._bank import (
    DEFAULT_BANK_TZ,
    AmountError,
    aware_utc_iso,
    bank_zone,
    minor_units,
    utc_iso,
)
from orderhub.reconciliation.statements import LineKind, Statement, StatementLine, StatementRefused

NAMESPACES = tuple(f"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{v:02d}" for v in range(2, 9))
_DOCTYPE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_DECLARED = re.compile(r"""^\s*<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""")


def read_camt053(data: bytes, *, bank: str, tz: str = DEFAULT_BANK_TZ,
                 money_out: LineKind = LineKind.OTHER) -> Statement:
    """Read a camt.053 document (one or more `Stmt`) whole, or refuse it with the entry and the reason.

    `line_no` is the entry's position in the file (1 = the first `Ntry`), since XML has no rows.
    """
    source = f"bank:{bank}"
    zone = bank_zone(tz)
    root, ns = _root(data, source)
    q = _Names(ns)
    statements = root.findall(f"{q('BkToCstmrStmt')}/{q('Stmt')}")
    if not statements:
        raise StatementRefused(source, 0, "no BkToCstmrStmt/Stmt in the document")
    lines: list[StatementLine] = []
    totals: dict[str, int] = {}
    periods: list[str] = []
    for number, stmt in enumerate(statements, start=1):
        stmt_id = _text(stmt, q("Id")) or str(number)
        balances = _balances(stmt, q, source, len(lines), stmt_id)
        if "OPBD" not in balances or "CLBD" not in balances:
            raise StatementRefused(source, len(lines), f"statement {stmt_id}: no OPBD and CLBD balances")
        (opening, currency), (closing, closing_currency) = balances["OPBD"], balances["CLBD"]
        if closing_currency != currency:
            raise StatementRefused(source, len(lines), f"statement {stmt_id}: balances in two currencies")
        moved = 0
        for entry in stmt.findall(q("Ntry")):
            line = _entry(entry, q, source, len(lines) + 1, zone, money_out)
            if line.currency != currency:
                raise StatementRefused(source, line.line_no, f"entry in {line.currency}, balances in {currency}")
            moved += -line.amount if line.raw.get("CdtDbtInd") == "DBIT" else line.amount
            lines.append(line)
        if opening + moved != closing:
            raise StatementRefused(
                source, len(lines),
                f"statement {stmt_id}: OPBD {opening} + entries {moved} != CLBD {closing} ({currency} minor units)")
        totals[f"{stmt_id}:OPBD"], totals[f"{stmt_id}:CLBD"] = opening, closing
        period = stmt.find(q("FrToDt"))
        if period is not None:
            periods.append(f"{_text(period, q('FrDtTm'))}..{_text(period, q('ToDtTm'))}")
    return Statement(source=source, lines=tuple(lines), stated_totals=totals, period=", ".join(periods))


class _Names:
    """Qualified names in the document's camt.053 namespace."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def __call__(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{part}" for part in path.split("/"))


def _root(data: bytes, source: str) -> tuple[ET.Element, str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StatementRefused(source, 0, "not UTF-8") from exc
    declared = _DECLARED.match(text)
    if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise StatementRefused(source, 0, f"declared encoding {declared.group(1)!r}, not UTF-8")
    if _DOCTYPE.search(text):
        raise StatementRefused(source, 0, "a DOCTYPE or entity declaration (refused: entities are not read)")
    try:
        root = ET.fromstring(text)  # noqa: S314 - no DOCTYPE, so no entity can be declared or expanded
    except ET.ParseError as exc:
        raise StatementRefused(source, 0, f"not well-formed XML (line {exc.position[0]})") from exc
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if ns not in NAMESPACES or root.tag != f"{{{ns}}}Document":
        raise StatementRefused(source, 0, f"not a camt.053.001.02-08 Document (root {root.tag!r})")
    return root, ns


def _text(element: ET.Element, path: str) -> str:
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def _amount(element: ET.Element | None, source: str, line_no: int) -> tuple[int, str]:
    if element is None:
        raise StatementRefused(source, line_no, "no Amt")
    currency = element.get("Ccy", "")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise StatementRefused(source, line_no, f"Amt without an ISO currency: {currency!r}")
    raw = (element.text or "").strip()
    if raw.startswith(("-", "+")):
        raise StatementRefused(source, line_no, f"a signed Amt {raw!r}: the direction is CdtDbtInd's")
    try:
        return minor_units(raw.replace(",", "_"), currency), currency  # "," is not an ISO 20022 decimal mark
    except AmountError as exc:
        raise StatementRefused(source, line_no, str(exc)) from exc


def _balances(stmt: ET.Element, q: _Names, source: str, line_no: int, stmt_id: str) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for bal in stmt.findall(q("Bal")):
        code = _text(bal, q("Tp/CdOrPrtry/Cd"))
        if code not in ("OPBD", "CLBD"):
            continue
        amount, currency = _amount(bal.find(q("Amt")), source, line_no)
        indicator = _text(bal, q("CdtDbtInd"))
        if indicator not in ("CRDT", "DBIT"):
            raise StatementRefused(source, line_no, f"statement {stmt_id}: {code} without CdtDbtInd")
        found[code] = (-amount if indicator == "DBIT" else amount, currency)
    return found


def _entry(entry: ET.Element, q: _Names, source: str, line_no: int, zone: ZoneInfo,
           money_out: LineKind) -> StatementLine:
    amount, currency = _amount(entry.find(q("Amt")), source, line_no)
    if amount == 0:
        raise StatementRefused(source, line_no, "an entry of zero")
    indicator = _text(entry, q("CdtDbtInd"))
    if indicator not in ("CRDT", "DBIT"):
        raise StatementRefused(source, line_no, f"CdtDbtInd {indicator!r}")
    status = _text(entry, q("Sts/Cd")) or _text(entry, q("Sts"))
    if status != "BOOK":
        raise StatementRefused(source, line_no, f"entry status {status!r}, not BOOK")
    occurred = _when(entry, q, source, line_no, zone)
    details = entry.findall(q("NtryDtls/TxDtls"))
    end_to_end = [e for d in details if (e := _text(d, q("Refs/EndToEndId"))) and e != "NOTPROVIDED"]
    reference = _text(entry, q("AcctSvcrRef")) or next(
        (r for d in details if (r := _text(d, q("Refs/AcctSvcrRef")))), "")
    remark = " ".join(
        (u.text or "").strip() for d in details for u in d.findall(q("RmtInf/Ustrd")) if (u.text or "").strip())
    other = "Dbtr" if indicator == "CRDT" else "Cdtr"
    counterparty = next((n for d in details for path in (f"RltdPties/{other}/Nm", f"RltdPties/{other}/Pty/Nm")
                         if (n := _text(d, q(path)))), "")
    raw = {"Amt": f"{(entry.find(q('Amt')).text or '').strip()} {currency}",  # type: ignore[union-attr]
           "CdtDbtInd": indicator, "Sts": status}
    for name in ("NtryRef", "AcctSvcrRef", "AddtlNtryInf"):
        if value := _text(entry, q(name)):
            raw[name] = value
    return StatementLine(
        source=source, line_no=line_no, kind=LineKind.PAYMENT if indicator == "CRDT" else money_out,
        amount=amount, currency=currency, occurred_at=occurred, transaction_id=reference,
        order_ref=" ".join(end_to_end), remark=remark, counterparty=counterparty, raw=raw)


def _when(entry: ET.Element, q: _Names, source: str, line_no: int, zone: ZoneInfo) -> str:
    for parent in ("BookgDt", "ValDt"):
        moment, day = _text(entry, q(f"{parent}/DtTm")), _text(entry, q(f"{parent}/Dt"))
        try:
            if moment:
                return aware_utc_iso(datetime.fromisoformat(moment), zone)
            if day:
                return utc_iso(date.fromisoformat(day), None, zone)
        except ValueError as exc:
            raise StatementRefused(source, line_no, f"{parent} is not an ISO date") from exc
    raise StatementRefused(source, line_no, "no BookgDt or ValDt")
