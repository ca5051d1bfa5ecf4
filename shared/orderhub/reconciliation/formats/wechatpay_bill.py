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

import codecs
import csv
import gc
import hashlib
import io
import operator
import zlib
from array import array
from collections.abc import Iterator, Mapping
from typing import TypeVar

from orderhub.money import exponent
from orderhub.reconciliation.formats._text import (
    beijing_to_utc,
    column_index,
    decimal_units,
    exact_division,
    format_units,
)
from orderhub.reconciliation.statements import LineKind, RawRow, Statement, StatementLine, StatementRefused

SOURCE = "wechatpay"
MAX_UNCOMPRESSED = 512 * 1024 * 1024  # a day's bill of a large merchant is tens of MiB; past this it is a bomb
FEE_PLACES = 5  # 手续费 is written to 1/100,000 yuan
SUMMARY_FIRST = "总交易单数"
PIECE = 1 << 22  # the text is decoded about this many bytes at a time
CACHE_LIMIT = 1 << 17  # distinct amounts and times remembered while reading (a day has 86,400 seconds)

# Columns every bill type has; those a refund line needs (ALL and REFUND bills).
REQUIRED = ("交易时间", "微信订单号", "商户订单号", "交易状态", "货币种类", "应结订单金额", "手续费")
REFUND_COLUMNS = ("微信退款单号", "商户退款单号", "退款金额")
OPTIONAL = ("用户标识", "订单金额", "申请退款金额", "充值券退款金额")
# Summary column -> the detail column it totals (None: the row count). Fee totals are in 1/100,000 yuan.
SUMMARY = {"总交易单数": None, "应结订单总金额": "应结订单金额", "退款总金额": "退款金额",
           "充值券退款总金额": "充值券退款金额", "手续费总金额": "手续费", "订单总金额": "订单金额",
           "申请退款总金额": "申请退款金额"}
SUMMARY_REQUIRED = ("总交易单数", "应结订单总金额", "退款总金额", "手续费总金额")

Rows = Iterator[tuple[int, list[str], bool]]
_V = TypeVar("_V")


def read_trade_bill(data: bytes, expected_sha1: str | None = None) -> Statement:
    """The trade bill as downloaded (plain or gzipped) -> its lines and stated totals; `expected_sha1` is
    the `hash_value` the bill API returned with the download URL (over the uncompressed file)."""
    raw = _gunzip(data) if data[:2] == b"\x1f\x8b" else data
    if expected_sha1 is not None and hashlib.sha1(raw).hexdigest() != expected_sha1.strip().lower():  # noqa: S324 (WeChat Pay's integrity hash)
        raise StatementRefused(SOURCE, 0, "SHA1 of the bill does not match the hash_value WeChat Pay gave")
    collecting = gc.isenabled()
    gc.disable()  # the lines hold no cycles; collecting while a million are made would only rescan them
    try:
        return _read_text(raw)
    finally:
        if collecting:
            gc.enable()


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


class _Undecodable(Exception):
    """The bytes at `position` are not text in the encoding tried."""

    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


def _read_text(raw: bytes) -> Statement:
    """UTF-8, else GBK, else refused where it stops being UTF-8."""
    try:
        return _read_as(raw, "utf-8")
    except _Undecodable as not_utf8:
        try:
            return _read_as(raw, "gbk")
        except _Undecodable:
            line_no = raw.count(b"\n", 0, not_utf8.position) + 1  # where it stops being UTF-8, the bill's own encoding
            raise StatementRefused(SOURCE, line_no, "neither UTF-8 nor GBK text") from not_utf8


def _read_as(raw: bytes, encoding: str) -> Statement:
    """The bill read as text in `encoding`, a piece at a time (decoded whole, a bill is twice its bytes, and
    its lines as much again). A refusal stands only when the whole file is in that encoding: a file that is
    not is read in the other encoding, or refused as neither, whatever its rows say.

    A bill without a quote character, and with CR only before LF, is split on newlines and commas: what csv
    would make of it, at a fraction of the cost, and its rows are read back from its bytes when a report
    asks (`_BillRow`). Any other is read by csv, whole."""
    try:
        if b'"' in raw or raw.count(b"\r") != raw.count(b"\r\n"):
            return _read(_csv_rows("".join(_pieces(raw, encoding))), None)
        return _read(_split_rows(raw, encoding), (raw, encoding))
    except StatementRefused:
        for _ in _pieces(raw, encoding):
            pass
        raise


def _pieces(raw: bytes, encoding: str) -> Iterator[str]:
    """The file's text in pieces of whole lines (cut after a newline byte, which is never inside a UTF-8 or
    GBK character); a UTF-8 byte order mark is not text."""
    start = _text_start(raw, encoding)
    view = memoryview(raw)
    while start < len(raw):
        cut = raw.find(b"\n", start + PIECE)
        end = len(raw) if cut < 0 else cut + 1
        try:
            yield str(view[start:end], encoding)
        except UnicodeDecodeError as exc:
            raise _Undecodable(start + exc.start) from exc
        start = end


def _text_start(raw: bytes, encoding: str) -> int:
    return len(codecs.BOM_UTF8) if encoding == "utf-8" and raw.startswith(codecs.BOM_UTF8) else 0


def _split_rows(raw: bytes, encoding: str) -> Rows:
    """(line number, fields, whether they are values) of each row that is not empty: when every field has
    its ` prefix, the fields come without it (values); otherwise as written."""
    line_no = 0
    for piece in _pieces(raw, encoding):
        lines = piece.split("\n")
        if piece[-1:] == "\n":
            lines.pop()
        for line in lines:
            line_no += 1
            if line[:1] == "`":
                values = line.split(",`")
                if line.count(",") == len(values) - 1:  # every comma is followed by a backtick
                    values[0] = values[0][1:]
                    if values[-1][-1:] == "\r":
                        values[-1] = values[-1][:-1]
                    yield line_no, values, True
                    continue
            row = (line[:-1] if line[-1:] == "\r" else line).split(",")
            if any(row):
                yield line_no, row, False


def _csv_rows(text: str) -> Rows:
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        if row and any(row):
            if all(value[:1] == "`" for value in row):
                yield reader.line_num, [value[1:] for value in row], True
            else:
                yield reader.line_num, row, False


def _read(rows: Rows, source: tuple[bytes, str] | None) -> Statement:
    """The header, the detail rows, the summary. `source` is the file and its encoding when its rows can be
    read back from it by line number (`_split_rows`); otherwise each line keeps its values."""
    first = next(rows, None)
    if first is None:
        raise StatementRefused(SOURCE, 0, "empty file: no header row")
    header_no, fields, are_values = first
    header = [("`" + name if are_values else name).strip().lstrip("`") for name in fields]
    try:
        columns = column_index(header, REQUIRED, (*OPTIONAL, *REFUND_COLUMNS))
        if any(name in columns for name in REFUND_COLUMNS):
            column_index(header, REFUND_COLUMNS)
    except ValueError as exc:
        raise StatementRefused(SOURCE, header_no, str(exc)) from exc
    reading = _Reading(header, columns)
    bill = _Bill(source[0], source[1], reading.positions) if source is not None else None
    positions, width, lines = reading.positions, reading.width, reading.lines
    # The common row is read here with what earlier rows taught `reading` (valid amounts, fees and times,
    # the bill's currency); a row with anything else in it is read by `reading.add`, which checks it in full,
    # in the order the rules are written, and says what is wrong with it.
    kinds = {"SUCCESS": LineKind.PAYMENT, "REVOKED": LineKind.OTHER}
    if "退款金额" in columns:
        kinds["REFUND"] = LineKind.REFUND
    paid_at, status_at, currency_at = columns["应结订单金额"], columns["交易状态"], columns["货币种类"]
    fee_at, time_at = columns["手续费"], columns["交易时间"]
    transaction_at, order_at, user_at = columns["微信订单号"], columns["商户订单号"], columns.get("用户标识")
    refund_at, refund_id_at = columns.get("退款金额", paid_at), columns.get("微信退款单号", paid_at)
    summed = [(name, position) for name, position in reading.summed if name != "手续费"]  # in the bill's units
    texts_of = operator.itemgetter(*(position for _, position in summed), paid_at)  # one more: always a tuple
    totals, fee_total = [0] * len(summed), 0
    fees, times, learn_units, learn_fee, learn_time = (reading.fees, reading.times, reading.learn_units,
                                                        reading.learn_fee, reading.learn_time)
    units: dict[str, int] = {}
    currency = ""
    refund, add, new_line = LineKind.REFUND, operator.add, StatementLine
    for line_no, values, are_values in rows:
        if not are_values:
            if values[0] == SUMMARY_FIRST:
                reading.sums["手续费"] += fee_total
                for (name, _), total in zip(summed, totals, strict=True):
                    reading.sums[name] += total
                return _close(rows, line_no, values, reading)
            if len(values) != width:
                raise StatementRefused(SOURCE, line_no, f"{len(values)} values for {width} columns")
            raise StatementRefused(SOURCE, line_no, "a value without its ` prefix")
        if len(values) != width:
            raise StatementRefused(SOURCE, line_no, f"{len(values)} values for {width} columns")
        raw = _BillRow(bill, line_no) if bill is not None else RawRow(positions, tuple(values))
        try:
            if values[currency_at] != currency:
                raise KeyError(currency_at)
            kind = kinds[values[status_at]]
            fee_micro, fee = fees.get(values[fee_at]) or learn_fee(values[fee_at])
            if kind is refund:
                amount_text, refund_id = values[refund_at], values[refund_id_at]
                if not refund_id or refund_id == "0":
                    raise KeyError(refund_id_at)
            else:
                amount_text, refund_id = values[paid_at], ""
            transaction_id = values[transaction_at]
            if not amount_text or not transaction_id:
                raise KeyError(transaction_at)
            texts = texts_of(values)
            added = list(map(units.get, texts))
            if None in added:
                added = list(map(learn_units, texts))
            amount = units[amount_text]
            if amount < 0:
                raise KeyError(paid_at)
            occurred_at = times.get(values[time_at]) or learn_time(values[time_at])
        except (KeyError, ValueError):
            try:
                lines.append(reading.add(line_no, values, raw))
            except ValueError as exc:
                raise StatementRefused(SOURCE, line_no, str(exc)) from exc
            currency, units = reading.currency, reading.units
            continue
        added.pop()
        totals = list(map(add, totals, added))
        fee_total += fee_micro
        lines.append(new_line(SOURCE, line_no, kind, amount, currency, occurred_at, transaction_id,
                              values[order_at], refund_id, fee, fee_micro, "",
                              values[user_at] if user_at is not None else "", raw))
    raise StatementRefused(SOURCE, 0, "no summary row: the file is cut short")


class _Reading:
    """A row read in full, as the bill's rules say, and what it teaches about the rows after it.

    A day's bill repeats itself: the same amounts, fees and seconds come back row after row. Each distinct
    text is parsed once and remembered while valid for the bill (`units`, `fees`, `times`; bounded)."""

    def __init__(self, header: list[str], columns: dict[str, int]) -> None:
        self.width = len(header)
        self.columns = columns
        self.positions = {name: position for position, name in enumerate(header)}
        self.lines: list[StatementLine] = []
        self.sums = {column: 0 for column in SUMMARY.values() if column is not None}
        self.summed = [(name, columns[name]) for name in self.sums if name in columns]
        self.dates: set[str] = set()
        self.places: int | None = None  # the bill's, from its first row
        self.currency = ""  # of the last row read
        self.units: dict[str, int] = {}  # amount text -> units at `places` ("" is 0, as a sum counts it)
        self.fees: dict[str, tuple[int, int | None]] = {}  # 手续费 text -> (fee_micro, fee at `places`)
        self.times: dict[str, str] = {}  # 交易时间 -> its UTC form

    def add(self, line_no: int, values: list[str], raw: Mapping[str, str]) -> StatementLine:
        """Read one detail row (its values without their ` prefix); a ValueError says why it cannot be."""
        columns = self.columns
        currency = values[columns["货币种类"]]
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise ValueError(f"货币种类 is not a currency code: {currency!r}")
        places = exponent(currency)
        status = values[columns["交易状态"]]
        fee_micro, fee = self._fee(values[columns["手续费"]], places)
        refund_id = ""
        if status == "SUCCESS" or status == "REVOKED":
            kind = LineKind.PAYMENT if status == "SUCCESS" else LineKind.OTHER
            amount = self._amount(values, "应结订单金额", places)
        elif status == "REFUND":
            if "退款金额" not in columns:
                raise ValueError("a refund row in a bill without refund columns (missing column 退款金额)")
            kind = LineKind.REFUND
            amount = self._amount(values, "退款金额", places)
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
        if self.places is None:
            self.places = places
        elif places != self.places:
            raise ValueError("currencies of different minor units in one bill")
        added = [(name, fee_micro if name == "手续费" else self.learn_units(values[position]))
                 for name, position in self.summed]
        occurred_at = self.learn_time(values[columns["交易时间"]])
        for name, units in added:
            self.sums[name] += units
        self.currency = currency
        return StatementLine(
            SOURCE, line_no, kind, amount, currency, occurred_at, transaction_id, values[columns["商户订单号"]],
            refund_id, fee, fee_micro, "", values[columns["用户标识"]] if "用户标识" in columns else "", raw)

    def learn_units(self, text: str) -> int:
        """An amount in units of the bill's currency (empty: 0, as a sum counts it), remembered."""
        units = self.units.get(text)
        if units is None:
            units = decimal_units(text or "0", self.places if self.places is not None else 2)
            _remember(self.units, text, units)
        return units

    def learn_fee(self, text: str) -> tuple[int, int | None]:
        return self._fee(text, self.places if self.places is not None else 2)

    def learn_time(self, text: str) -> str:
        """The UTC form of a 交易时间, remembered; its day is one the bill covers."""
        occurred_at = self.times.get(text)
        if occurred_at is None:
            occurred_at = beijing_to_utc(text)
            _remember(self.times, text, occurred_at)
            self.dates.add(text[:10])
        return occurred_at

    def _amount(self, values: list[str], name: str, places: int) -> int:
        text = values[self.columns[name]]
        try:
            return self.learn_units(text) if text and places == self.places else decimal_units(text, places)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc

    def _fee(self, text: str, places: int) -> tuple[int, int | None]:
        known = self.fees.get(text) if places == self.places else None
        if known is None:
            try:
                fee_micro = decimal_units(text, FEE_PLACES)
            except ValueError as exc:
                raise ValueError(f"手续费: {exc}") from exc
            known = (fee_micro, exact_division(fee_micro, 10 ** (FEE_PLACES - places)))
            if places == self.places:
                _remember(self.fees, text, known)
        return known


def _remember(known: dict[str, _V], text: str, value: _V) -> None:
    if len(known) >= CACHE_LIMIT:
        known.clear()
    known[text] = value


class _Bill:
    """A bill's bytes, shared by the rows read from it, and where each of its lines starts (found the first
    time a report asks for a row, not while reading)."""

    __slots__ = ("data", "encoding", "positions", "_starts")

    def __init__(self, data: bytes, encoding: str, positions: Mapping[str, int]) -> None:
        self.data, self.encoding, self.positions = data, encoding, positions
        self._starts: array[int] | None = None

    def values(self, line_no: int) -> list[str]:
        """The values of the detail row on `line_no` (1-based), without their ` prefix, as read."""
        starts = self._starts
        if starts is None:
            starts = array("q", [_text_start(self.data, self.encoding)])
            at = self.data.find(b"\n")
            while at >= 0:
                starts.append(at + 1)
                at = self.data.find(b"\n", at + 1)
            self._starts = starts
        line = self.data[starts[line_no - 1]:starts[line_no] - 1].decode(self.encoding)
        return line.removesuffix("\r")[1:].split(",`")


class _BillRow(Mapping[str, str]):
    """A detail row as the bill has it, by header name, read again from the bill's bytes when asked: a
    million rows keep their values in the file they came in, not in a million dicts."""

    __slots__ = ("_bill", "_line_no")

    def __init__(self, bill: _Bill, line_no: int) -> None:
        self._bill, self._line_no = bill, line_no

    def __getitem__(self, name: str) -> str:
        return self._bill.values(self._line_no)[self._bill.positions[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._bill.positions)

    def __len__(self) -> int:
        return len(self._bill.positions)

    def __repr__(self) -> str:
        return repr(dict(zip(self._bill.positions, self._bill.values(self._line_no), strict=True)))


def _close(rows: Iterator[tuple[int, list[str], bool]], header_no: int, summary_header: list[str],
           reading: _Reading) -> Statement:
    """Read the summary row after its header and check the lines against it."""
    names = [name.strip() for name in summary_header]
    try:
        where = column_index(names, SUMMARY_REQUIRED, tuple(SUMMARY))
    except ValueError as exc:
        raise StatementRefused(SOURCE, header_no, f"summary: {exc}") from exc
    found = next(rows, None)
    if found is None:
        raise StatementRefused(SOURCE, header_no, "summary header without its row: the file is cut short")
    line_no, row, are_values = found
    if len(row) != len(names) or not are_values:
        raise StatementRefused(SOURCE, line_no, "summary row does not match its header")
    extra = next(rows, None)
    if extra is not None:
        raise StatementRefused(SOURCE, extra[0], "rows after the summary row")
    lines, sums, columns, places, dates = (reading.lines, reading.sums, reading.columns, reading.places or 2,
                                           reading.dates)
    # By the summary's own names, in minor units (手续费总金额 in 1/100,000 of the major unit, as written).
    stated: dict[str, int] = {}
    for name, position in where.items():
        text = row[position]
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
