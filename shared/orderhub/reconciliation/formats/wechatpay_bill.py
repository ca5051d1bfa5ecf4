"""WeChat Pay's trade bill (交易账单), read whole into statement lines, or refused whole.

The bill is what `GET /v3/bill/tradebill` points at (`download_url`, with `hash_type` SHA1 and
`hash_value` over the uncompressed file; `tar_type=GZIP` gives it gzipped): one day (Beijing time, cut at
00:00:00) of payments, by their success time, and refunds, by the time WeChat Pay accepted them, each a row
of its own. Published layout (pay.weixin.qq.com/docs/merchant/products/bill-download/format-trade.html):

    交易时间,公众账号ID,商户号,…,交易状态,…,应结订单金额,…,微信退款单号,商户退款单号,退款金额,…,手续费,费率,…
    `2026-11-22 10:59:58,`wx…,`1900000001,…,`SUCCESS,…,`258.00,…,`0,`0,`0.00,…,`1.55000,`0.60%,…
    总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额
    `2,`258.00,`58.00,`0.00,`1.20000,`258.00,`58.00

Comma-separated, every value of the detail and summary rows prefixed with a backtick (so spreadsheets do
not turn ids into floats); amounts in yuan with 2 decimals, 手续费 with 5 (negative on a refund row: the fee
given back). The ALL, SUCCESS and REFUND bills differ in their columns and WeChat Pay does not promise
their order, so columns are found by header name: SUCCESS has no refund columns, and a bill that has
one refund column must have all of those a refund line is read from.

Reading: 交易状态 SUCCESS is a PAYMENT of 应结订单金额 (what settles to the merchant, after coupons WeChat
Pay funds are not counted: the pair of 退款金额, which a refund moves); REFUND is a REFUND of 退款金额 with
微信退款单号 as `refund_id` (the 商户退款单号, 退款状态 and the order-side figures 订单金额 / 申请退款金额 stay in
`raw`: the bill is a snapshot, a refund's status in it is not updated later); REVOKED (a payment-code
payment reversed the same day) is an OTHER line of 应结订单金额 for a person to look at, since money moved
and came back; any other state is refused, as a bill this reader does not know. The lines must add up to
the summary row (count, and each total whose column the bill has), or the file is refused as cut short.

Encoding: API v3 bills are UTF-8; a file that is not UTF-8 is tried as GBK (the encoding of older exports
and of bills saved through a Chinese-locale spreadsheet), and what is neither is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zlib
from collections.abc import Iterator

from orderhub.money import exponent
from orderhub.reconciliation.formats._text import (
    beijing_to_utc,
    column_index,
    decimal_units,
    exact_division,
    format_units,
)
from orderhub.reconciliation.statements import LineKind, Statement, StatementLine, StatementRefused

SOURCE = "wechatpay"
MAX_UNCOMPRESSED = 512 * 1024 * 1024  # a day's bill of a large merchant is tens of MiB; past this it is a bomb
FEE_PLACES = 5  # 手续费 is written to 1/100,000 yuan
SUMMARY_FIRST = "总交易单数"

# Columns every bill type has; those a refund line needs (ALL and REFUND bills).
REQUIRED = ("交易时间", "微信订单号", "商户订单号", "交易状态", "货币种类", "应结订单金额", "手续费")
REFUND_COLUMNS = ("微信退款单号", "商户退款单号", "退款金额")
OPTIONAL = ("用户标识", "订单金额", "申请退款金额", "充值券退款金额")
# Summary column -> the detail column it totals (None: the row count). Fee totals are in 1/100,000 yuan.
SUMMARY = {"总交易单数": None, "应结订单总金额": "应结订单金额", "退款总金额": "退款金额",
           "充值券退款总金额": "充值券退款金额", "手续费总金额": "手续费", "订单总金额": "订单金额",
           "申请退款总金额": "申请退款金额"}
SUMMARY_REQUIRED = ("总交易单数", "应结订单总金额", "退款总金额", "手续费总金额")


def read_trade_bill(data: bytes, expected_sha1: str | None = None) -> Statement:
    """The trade bill as downloaded (plain or gzipped) -> its lines and stated totals; `expected_sha1` is
    the `hash_value` the bill API returned with the download URL (over the uncompressed file)."""
    raw = _gunzip(data) if data[:2] == b"\x1f\x8b" else data
    if expected_sha1 is not None and hashlib.sha1(raw).hexdigest() != expected_sha1.strip().lower():  # noqa: S324 (WeChat Pay's integrity hash)
        raise StatementRefused(SOURCE, 0, "SHA1 of the bill does not match the hash_value WeChat Pay gave")
    return _read(_decode(raw))


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_UNCOMPRESSED + 1)
    except zlib.error as exc:
        raise StatementRefused(SOURCE, 0, f"not a readable gzip stream ({exc})") from exc
    if len(out) > MAX_UNCOMPRESSED or inflater.unconsumed_tail:
        raise StatementRefused(SOURCE, 0, f"more than {MAX_UNCOMPRESSED} bytes uncompressed")
    if not inflater.eof:
        raise StatementRefused(SOURCE, 0, "gzip stream cut short")
    return out


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as not_utf8:
        try:
            return raw.decode("gbk")
        except UnicodeDecodeError:
            line_no = raw.count(b"\n", 0, not_utf8.start) + 1  # where it stops being UTF-8, the bill's own encoding
            raise StatementRefused(SOURCE, line_no, "neither UTF-8 nor GBK text") from not_utf8


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        if row and any(row):
            yield reader.line_num, row


def _read(text: str) -> Statement:
    rows = _rows(text)
    first = next(rows, None)
    if first is None:
        raise StatementRefused(SOURCE, 0, "empty file: no header row")
    header_no, header = first
    header = [name.strip().lstrip("`") for name in header]
    try:
        columns = column_index(header, REQUIRED, (*OPTIONAL, *REFUND_COLUMNS))
        if any(name in columns for name in REFUND_COLUMNS):
            column_index(header, REFUND_COLUMNS)
    except ValueError as exc:
        raise StatementRefused(SOURCE, header_no, str(exc)) from exc

    lines: list[StatementLine] = []
    sums = {column: 0 for column in SUMMARY.values() if column is not None}
    summed = [(name, columns[name]) for name in sums if name in columns]
    dates: set[str] = set()
    places: int | None = None
    width = len(header)
    for line_no, row in rows:
        if row[0] == SUMMARY_FIRST:
            return _close(rows, line_no, row, lines, sums, columns, places or 2, dates)
        if len(row) != width:
            raise StatementRefused(SOURCE, line_no, f"{len(row)} values for {width} columns")
        if not all(value[:1] == "`" for value in row):
            raise StatementRefused(SOURCE, line_no, "a value without its ` prefix")
        values = [value[1:] for value in row]
        try:
            line, row_places = _line(line_no, values, columns, header)
            if places is None:
                places = row_places
            elif row_places != places:
                raise ValueError("currencies of different minor units in one bill")
            for name, position in summed:
                sums[name] += decimal_units(values[position] or "0", FEE_PLACES if name == "手续费" else places)
        except ValueError as exc:
            raise StatementRefused(SOURCE, line_no, str(exc)) from exc
        dates.add(values[columns["交易时间"]][:10])
        lines.append(line)
    raise StatementRefused(SOURCE, 0, "no summary row: the file is cut short")


def _line(line_no: int, values: list[str], columns: dict[str, int], header: list[str]) -> tuple[StatementLine, int]:
    currency = values[columns["货币种类"]]
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise ValueError(f"货币种类 is not a currency code: {currency!r}")
    places = exponent(currency)
    status = values[columns["交易状态"]]
    fee_micro = _amount(values, columns, "手续费", FEE_PLACES)
    refund_id = ""
    if status == "SUCCESS" or status == "REVOKED":
        kind = LineKind.PAYMENT if status == "SUCCESS" else LineKind.OTHER
        amount = _amount(values, columns, "应结订单金额", places)
    elif status == "REFUND":
        if "退款金额" not in columns:
            raise ValueError("a refund row in a bill without refund columns (missing column 退款金额)")
        kind = LineKind.REFUND
        amount = _amount(values, columns, "退款金额", places)
        refund_id = values[columns["微信退款单号"]]
        if not refund_id or refund_id == "0":
            raise ValueError("a refund row without 微信退款单号")
    else:
        raise ValueError(f"交易状态 {status!r} is not one this reader knows (SUCCESS, REFUND, REVOKED)")
    if amount < 0:
        raise ValueError(f"negative amount {amount} on a {status} row")
    transaction_id = values[columns["微信订单号"]]
    if not transaction_id:
        raise ValueError("empty 微信订单号")
    line = StatementLine(
        source=SOURCE, line_no=line_no, kind=kind, amount=amount, currency=currency,
        occurred_at=beijing_to_utc(values[columns["交易时间"]]), transaction_id=transaction_id,
        order_ref=values[columns["商户订单号"]], refund_id=refund_id,
        fee=exact_division(fee_micro, 10 ** (FEE_PLACES - places)), fee_micro=fee_micro,
        counterparty=values[columns["用户标识"]] if "用户标识" in columns else "",
        raw=dict(zip(header, values, strict=True)))
    return line, places


def _amount(values: list[str], columns: dict[str, int], name: str, places: int) -> int:
    try:
        return decimal_units(values[columns[name]], places)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def _close(rows: Iterator[tuple[int, list[str]]], header_no: int, summary_header: list[str],
           lines: list[StatementLine], sums: dict[str, int], columns: dict[str, int], places: int,
           dates: set[str]) -> Statement:
    """Read the summary row after its header and check the lines against it."""
    names = [name.strip() for name in summary_header]
    try:
        where = column_index(names, SUMMARY_REQUIRED, tuple(SUMMARY))
    except ValueError as exc:
        raise StatementRefused(SOURCE, header_no, f"summary: {exc}") from exc
    found = next(rows, None)
    if found is None:
        raise StatementRefused(SOURCE, header_no, "summary header without its row: the file is cut short")
    line_no, row = found
    if len(row) != len(names) or not all(value[:1] == "`" for value in row):
        raise StatementRefused(SOURCE, line_no, "summary row does not match its header")
    extra = next(rows, None)
    if extra is not None:
        raise StatementRefused(SOURCE, extra[0], "rows after the summary row")
    # By the summary's own names, in minor units (手续费总金额 in 1/100,000 of the major unit, as written).
    stated: dict[str, int] = {}
    for name, position in where.items():
        text = row[position][1:]
        column = SUMMARY[name]
        try:
            if column is None:
                if not text.isdigit():
                    raise ValueError(f"not a count: {text!r}")
                stated[name] = int(text)
            else:
                stated[name] = decimal_units(text, FEE_PLACES if column == "手续费" else places)
        except ValueError as exc:
            raise StatementRefused(SOURCE, line_no, f"{name}: {exc}") from exc
        read = len(lines) if column is None else sums[column]
        if column is not None and column not in columns and read == 0 and stated[name] == 0:
            continue
        if column is not None and column not in columns:
            raise StatementRefused(SOURCE, line_no, f"{name} is {text} but the bill has no column {column}")
        if stated[name] != read:
            raise StatementRefused(SOURCE, line_no, f"{name} says {text}, the lines add up to "
                                   f"{read if column is None else _show(read, column, places)}: the file is cut "
                                   f"short or altered")
    return Statement(SOURCE, tuple(lines), stated, "..".join(sorted({min(dates), max(dates)})) if dates else "")


def _show(units: int, column: str, places: int) -> str:
    return format_units(units, FEE_PLACES if column == "手续费" else places)
