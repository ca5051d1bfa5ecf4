"""Chinese banks' CSV exports -> statement lines, through a per-bank column mapping that is configuration (REC-1).

Every bank exports its transaction detail (交易明细) differently: encoding (GBK or UTF-8 with a BOM), title
rows above the header, one signed amount column or separate in/out columns, a currency column or none, a
serial or none. `BankCsvMapping` says which header holds what; columns are found by header name, so their
order does not matter. A row's money in is a PAYMENT and its money out the configured kind (OTHER, or
REFUND for an account that only pays refunds out); amounts are read exactly in yuan -> fen (thousands
separators only where the mapping says the export writes them). A file is used only whole: any row that
cannot be read refuses it, with the file's line number and the reason.

The default mappings (`DEFAULT_MAPPINGS`) were taken from published importers of these exports, not from the
banks' documentation (which is behind their online banking); each says where it came from and what could
not be confirmed. They describe personal/online-banking detail exports: a corporate account's export may
differ, and is then configured as a mapping of its own.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orderhub.reconciliation.formats._bank import DEFAULT_BANK_TZ, AmountError, bank_zone, minor_units, utc_iso
from orderhub.reconciliation.statements import LineKind, Statement, StatementLine, StatementRefused

# How the exports name the currency, when they name it in words.
CURRENCY_NAMES = {"人民币": "CNY", "人民币元": "CNY", "RMB": "CNY", "CNY": "CNY", "美元": "USD", "USD": "USD",
                  "港币": "HKD", "港元": "HKD", "HKD": "HKD", "欧元": "EUR", "EUR": "EUR", "日元": "JPY", "JPY": "JPY"}


class BankCsvMapping(BaseModel):
    """Which header of a bank's CSV export holds what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bank: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")  # the line's source is `bank:<bank>`
    encoding: Literal["gbk", "gb18030", "utf-8"] = "utf-8"  # gbk is read as gb18030 (its superset); BOM dropped
    skip_rows: int = Field(default=0, ge=0)  # records (title, account, period rows) above the header
    date: str  # header of the transaction date (or date and time in one)
    date_format: str = "%Y-%m-%d"  # strptime format of that column
    time: str | None = None  # header of a separate time column
    time_format: str = "%H:%M:%S"
    amount: str | None = None  # one signed amount column...
    money_in_sign: Literal["positive", "negative"] = "positive"  # ...and which sign is money in
    credit: str | None = None  # ...or money in and money out in two unsigned columns
    debit: str | None = None
    thousands_separator: bool = False  # amounts written "1,234.50"
    currency: str | None = None  # header of the currency (code or name in CURRENCY_NAMES)...
    fixed_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")  # ...or the one currency of the file
    serial: str | None = None  # the bank's serial / reference of the movement (the ledger's reference)
    counterparty: tuple[str, ...] = ()  # headers joined by a space (name, account)
    remark: tuple[str, ...] = ()  # 摘要 / 附言 / 用途 headers, joined by a space
    footer_prefixes: tuple[str, ...] = ()  # a row with a cell starting so ends the table (人民币合计)
    money_out: Literal["other", "refund"] = "other"
    tz: str = DEFAULT_BANK_TZ  # the zone the export's local times are in

    @model_validator(mode="after")
    def _one_way_to_each_value(self) -> BankCsvMapping:
        if (self.amount is None) == (self.credit is None and self.debit is None):
            raise ValueError(f"{self.bank}: give either amount, or credit and debit")
        if self.amount is None and (self.credit is None or self.debit is None):
            raise ValueError(f"{self.bank}: credit and debit go together")
        if (self.currency is None) == (self.fixed_currency is None):
            raise ValueError(f"{self.bank}: give either a currency header or a fixed_currency")
        bank_zone(self.tz)
        return self

    def headers(self) -> tuple[str, ...]:
        named = (self.date, self.time, self.amount, self.credit, self.debit, self.currency, self.serial)
        return tuple(h for h in named if h) + self.counterparty + self.remark


DEFAULT_MAPPINGS: dict[str, BankCsvMapping] = {
    # ICBC 工商银行 personal online banking "hisdetail" export: UTF-8 with BOM, 6 rows above the header, 15
    # columns, split in/out 记账金额 columns with thousands separators, a 人民币合计 summary row at the end.
    # Headers as read by deb-sig/double-entry-generator (pkg/provider/icbc) and other public importers.
    # Not confirmed: the date format (importers differ: 2026-03-14 and 20260314; configured as the former).
    # It has no serial column.
    "icbc": BankCsvMapping(
        bank="icbc", encoding="utf-8", skip_rows=6, date="交易日期", date_format="%Y-%m-%d",
        credit="记账金额(收入)", debit="记账金额(支出)", thousands_separator=True, currency="记账币种",
        counterparty=("对方户名", "对方账户"), remark=("摘要", "交易详情"), footer_prefixes=("人民币合计",)),
    # CCB 建设银行 personal detail export: 序号,摘要,币别,钞汇,交易日期,交易金额,账户余额,交易地点/附言,
    # 对方账号与户名; one signed 交易金额 (negative = out), 币别 人民币元. Headers as read by
    # jiegec/china_bean_importers (ccb_debit_card). Not confirmed: the rows above the header (configured
    # as 5) and the date format (configured 20260314); it has no serial column and no time.
    "ccb": BankCsvMapping(
        bank="ccb", encoding="utf-8", skip_rows=5, date="交易日期", date_format="%Y%m%d", amount="交易金额",
        currency="币别", counterparty=("对方账号与户名",), remark=("摘要", "交易地点/附言")),
}


def read_bank_csv(data: bytes, mapping: BankCsvMapping) -> Statement:
    """Read a bank's CSV export whole by its mapping, or refuse it with the line and the reason."""
    source = f"bank:{mapping.bank}"
    zone = bank_zone(mapping.tz)
    try:
        text = data.decode("gb18030" if mapping.encoding in ("gbk", "gb18030") else "utf-8")
    except UnicodeDecodeError as exc:
        raise StatementRefused(source, 0, f"not {mapping.encoding}") from exc
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        for _ in range(mapping.skip_rows):
            next(reader)
        header = [cell.strip() for cell in next(reader)]
    except StopIteration:
        raise StatementRefused(source, reader.line_num, "the file ends before its header") from None
    missing = [h for h in mapping.headers() if h not in header]
    if missing:
        raise StatementRefused(source, reader.line_num, f"no column {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise StatementRefused(source, reader.line_num, "a header named twice")
    lines: list[StatementLine] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if mapping.footer_prefixes and any(c.strip().startswith(mapping.footer_prefixes) for c in cells):
                break
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
                raise StatementRefused(source, reader.line_num, f"{len(cells)} cells under {len(header)} headers")
            row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
            lines.append(_line(row, mapping, source, reader.line_num, zone))
    except csv.Error as exc:
        raise StatementRefused(source, reader.line_num, f"not CSV: {exc}") from exc
    return Statement(source=source, lines=tuple(lines))


def _line(row: dict[str, str], mapping: BankCsvMapping, source: str, line_no: int, zone: ZoneInfo) -> StatementLine:
    currency = mapping.fixed_currency or CURRENCY_NAMES.get(row[mapping.currency or ""], "")
    if not currency:
        raise StatementRefused(source, line_no, f"unknown currency {row[mapping.currency or '']!r}")
    try:
        if mapping.amount is not None:
            signed = minor_units(row[mapping.amount], currency, thousands=mapping.thousands_separator)
            money_in = signed > 0 if mapping.money_in_sign == "positive" else signed < 0
            amount = abs(signed)
        else:
            money_in, amount = _split(row[mapping.credit or ""], row[mapping.debit or ""], currency, mapping)
    except AmountError as exc:
        raise StatementRefused(source, line_no, str(exc)) from exc
    if amount == 0:
        raise StatementRefused(source, line_no, "a line of zero")
    occurred_at = _when(row, mapping, source, line_no, zone)
    return StatementLine(
        source=source, line_no=line_no,
        kind=LineKind.PAYMENT if money_in else LineKind(mapping.money_out),
        amount=amount, currency=currency, occurred_at=occurred_at,
        transaction_id=row[mapping.serial] if mapping.serial else "",
        remark=" ".join(v for h in mapping.remark if (v := row[h])),
        counterparty=" ".join(v for h in mapping.counterparty if (v := row[h])),
        raw=row,
    )


def _split(credit: str, debit: str, currency: str, mapping: BankCsvMapping) -> tuple[bool, int]:
    """Two unsigned columns: exactly one of them holds the movement (the other empty or zero)."""
    thousands = mapping.thousands_separator
    money_in = minor_units(credit, currency, thousands=thousands) if credit else 0
    money_out = minor_units(debit, currency, thousands=thousands) if debit else 0
    if money_in < 0 or money_out < 0:
        raise AmountError("a signed amount in an in/out column")
    if money_in and money_out:
        raise AmountError("money both in and out on one row")
    return (True, money_in) if money_in else (False, money_out)


def _when(row: dict[str, str], mapping: BankCsvMapping, source: str, line_no: int, zone: ZoneInfo) -> str:
    try:
        stamp = datetime.strptime(row[mapping.date], mapping.date_format)  # noqa: DTZ007 - the bank's zone follows
        day: date = stamp.date()
        at: time | None = stamp.time()
        if mapping.time is not None:
            at = datetime.strptime(row[mapping.time], mapping.time_format).time()  # noqa: DTZ007
    except ValueError as exc:
        raise StatementRefused(source, line_no, f"a date or time not as {mapping.date_format!r}") from exc
    return utc_iso(day, at, zone)
