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

Size: a large merchant's day is a million rows (256 MB), and reconciling it has seconds and one GiB. The
text is decoded a piece at a time; a piece in which every line is a plain row (backticks, no quotes) is
read column by column (`_Reading.block`), each distinct amount, fee and second parsed once; anything
else in a piece sends it row by row through the full checks (`_Reading.add`), which decide and word every
refusal. A line's `raw` is read back from the bill's bytes when a report asks for it (`_BillRow`).
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import repeat
from typing import NamedTuple, TypeVar

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
PIECE = 1 << 16  # the text is decoded about this many bytes at a time
CACHE_LIMIT = 1 << 17  # distinct amounts and times remembered while reading (a day has 86,400 seconds)
TAIL = 4096  # the summary header and row are read on their own, after the last piece of detail rows
BLOCK_LINES = 64  # a piece of fewer lines is read row by row

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
        if b'"' not in raw:
            try:
                return _read(_split_rows(raw, encoding), _Bill(raw, encoding))
            except _NotPlain:
                pass
        return _read(_csv_rows("".join(text for _, text in _pieces(raw, encoding))), None)
    except StatementRefused:
        for _ in _pieces(raw, encoding):
            pass
        raise


class _NotPlain(Exception):
    """A CR that does not end a line: csv's reading of it (a line break) is the one that counts."""


def _pieces(raw: bytes, encoding: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of the file in pieces of whole lines, cut after a newline byte (which is never
    inside a UTF-8 or GBK character); a UTF-8 byte order mark is not text. The first line (the header) and
    the last few KiB (the summary) are pieces of their own; the pieces between grow to `PIECE` bytes."""
    start = _text_start(raw, encoding)
    header_end = raw.find(b"\n", start)
    tail = raw.rfind(b"\n", start, len(raw) - TAIL)  # the summary's rows are after it
    view = memoryview(raw)
    size = PIECE // 64
    line_no = 1
    while start < len(raw):
        cut = header_end if header_end >= 0 and start < header_end else raw.find(b"\n", start + size)
        if start <= tail < cut or (cut < 0 and start <= tail):
            cut = tail
        end = len(raw) if cut < 0 else cut + 1
        try:
            text = str(view[start:end], encoding)
        except UnicodeDecodeError as exc:
            raise _Undecodable(start + exc.start) from exc
        yield line_no, text
        line_no += text.count("\n")
        start, size = end, min(size * 2, PIECE)


def _text_start(raw: bytes, encoding: str) -> int:
    return len(codecs.BOM_UTF8) if encoding == "utf-8" and raw.startswith(codecs.BOM_UTF8) else 0


class _Block(NamedTuple):
    """Lines `line_no`… of a piece in which every line is a row of values (each split at ",`", the first
    value still with its backtick), to be read column by column."""

    line_no: int
    rows: list[list[str]]


def _split_rows(raw: bytes, encoding: str) -> Iterator[tuple[int, list[str], bool] | _Block]:
    """(line number, fields, whether they are values) of each row that is not empty, as csv would read it:
    when every field has its ` prefix the fields come without it (values); otherwise as written. A piece
    whose every line is such a row comes whole, as a `_Block`."""
    split_values = operator.methodcaller("split", ",`")
    for line_no, piece in _pieces(raw, encoding):
        body = piece[:-2] if piece[-2:] == "\r\n" else piece[:-1] if piece[-1:] == "\n" else piece
        crs, lfs = piece.count("\r"), piece.count("\n")
        if not crs:
            lines = body.split("\n")
        elif crs == lfs and len(lines := body.split("\r\n")) == lfs + (piece[-1:] != "\n"):
            pass  # every line ends with CR LF
        elif crs == piece.count("\r\n"):
            lines = [line.removesuffix("\r") for line in body.split("\n")]
        else:
            raise _NotPlain
        if len(lines) >= BLOCK_LINES and body[:1] == "`":
            rows = list(map(split_values, lines))
            # Each line starts with a backtick and has no comma but those before one.
            if (sum(map(_starts_with_backtick, rows)) == len(rows)
                    and body.count(",") == sum(map(len, rows)) - len(rows)):
                yield _Block(line_no, rows)
                continue
        for line in lines:
            if line[:1] == "`":
                values = line.split(",`")
                if line.count(",") == len(values) - 1:  # every comma is followed by a backtick
                    values[0] = values[0][1:]
                    yield line_no, values, True
                    line_no += 1
                    continue
            row = line.split(",")
            if any(row):
                yield line_no, row, False
            line_no += 1


def _one_by_one(rows: Iterator[tuple[int, list[str], bool] | _Block], reading: _Reading) -> Rows:
    """Each row, a block's only when it cannot be read whole (`_Reading.block`)."""
    for item in rows:
        if isinstance(item, _Block):
            if not reading.block(item):
                for offset, values in enumerate(item.rows):
                    values = values[:]
                    values[0] = values[0][1:]
                    yield item.line_no + offset, values, True
        else:
            yield item


def _csv_rows(text: str) -> Rows:
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        if row and any(row):
            if all(value[:1] == "`" for value in row):
                yield reader.line_num, [value[1:] for value in row], True
            else:
                yield reader.line_num, row, False


def _read(items: Iterator[tuple[int, list[str], bool] | _Block], bill: _Bill | None) -> Statement:
    """The header, the detail rows, the summary. `bill` is the file when its rows can be read back from it by
    line number (`_split_rows`); otherwise each line keeps its values."""
    first = next(items, None)
    if first is None:
        raise StatementRefused(SOURCE, 0, "empty file: no header row")
    header_no, fields, are_values = first if not isinstance(first, _Block) else (first.line_no, first.rows[0], True)
    header = [("`" + name if are_values else name).strip().lstrip("`") for name in fields]
    try:
        columns = column_index(header, REQUIRED, (*OPTIONAL, *REFUND_COLUMNS))
        if any(name in columns for name in REFUND_COLUMNS):
            column_index(header, REFUND_COLUMNS)
    except ValueError as exc:
        raise StatementRefused(SOURCE, header_no, str(exc)) from exc
    reading = _Reading(header, columns, bill)
    width = reading.width
    rows = _one_by_one(items, reading)
    for line_no, values, are_values in rows:
        if not are_values:
            if values[0] == SUMMARY_FIRST:
                reading.summing_up = True  # what follows is the summary: no more blocks of detail rows
                return _close(rows, line_no, values, reading)
            if len(values) != width:
                raise StatementRefused(SOURCE, line_no, f"{len(values)} values for {width} columns")
            raise StatementRefused(SOURCE, line_no, "a value without its ` prefix")
        if len(values) != width:
            raise StatementRefused(SOURCE, line_no, f"{len(values)} values for {width} columns")
        try:
            reading.add(line_no, values)
        except ValueError as exc:
            raise StatementRefused(SOURCE, line_no, str(exc)) from exc
    raise StatementRefused(SOURCE, 0, "no summary row: the file is cut short")


class _Known(dict[str, _V]):
    """Texts already parsed, by text: a missing one is parsed (or refused, with ValueError) by `learn` and
    remembered; bounded, since a bill's ids are not what repeats."""

    def __init__(self, learn: Callable[[str], _V]) -> None:
        super().__init__()
        self._learn = learn

    def __missing__(self, text: str) -> _V:
        value = self._learn(text)
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[text] = value
        return value


class _Reading:
    """The bill's lines as they are read, and the sums its summary row is checked against.

    A row is read in full by `add`, check after check in the order the rules are written, so that a refusal
    names what is wrong first. A block of rows (most of a bill) is read by `block` column by column, at C
    speed, when it holds only the common case; anything else in it (a new currency, an unknown state, a
    value that does not parse, an empty id) sends the block back to be read row by row.

    A day's bill repeats itself: the same amounts, fees and seconds come back row after row, so each distinct
    text is parsed once (`units`, `fees`, `times`)."""

    def __init__(self, header: list[str], columns: dict[str, int], bill: _Bill | None) -> None:
        self.width = len(header)
        self.columns = columns
        self.positions = {name: position for position, name in enumerate(header)}
        self.bill = bill
        if bill is not None:
            bill.positions = self.positions
        self.lines: list[StatementLine] = []
        self.sums = {column: 0 for column in SUMMARY.values() if column is not None}
        self.summed = [(name, columns[name]) for name in self.sums if name in columns]
        self.dates: set[str] = set()
        self.summing_up = False
        self.places: int | None = None  # the bill's, from its first row
        self.currency = ""  # of the last row read
        # Valid texts at the bill's places: amounts ("" is 0, as a sum counts it), fees as (fee_micro, fee).
        self.units: _Known[int] = _Known(lambda text: decimal_units(text or "0", self.places or 0))
        self.fees: _Known[tuple[int, int | None]] = _Known(lambda text: self._fee(text, self.places or 0))
        self.times: _Known[str] = _Known(self._utc)
        self.kinds = {"SUCCESS": LineKind.PAYMENT, "REVOKED": LineKind.OTHER}
        if "退款金额" in columns:
            self.kinds["REFUND"] = LineKind.REFUND

    def add(self, line_no: int, values: list[str]) -> None:
        """Read one detail row (its values without their ` prefix); a ValueError says why it cannot be."""
        columns = self.columns
        currency = values[columns["货币种类"]]
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise ValueError(f"货币种类 is not a currency code: {currency!r}")
        places = exponent(currency)
        status = values[columns["交易状态"]]
        fee_micro, fee = self.fees[values[columns["手续费"]]] if places == self.places else self._fee(
            values[columns["手续费"]], places)
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
        added = [(name, fee_micro if name == "手续费" else self.units[values[position]])
                 for name, position in self.summed]
        occurred_at = self.times[values[columns["交易时间"]]]
        for name, units in added:
            self.sums[name] += units
        self.currency = currency
        user = values[columns["用户标识"]] if "用户标识" in columns else ""
        self.lines.append(StatementLine(
            SOURCE, line_no, kind, amount, currency, occurred_at, transaction_id, values[columns["商户订单号"]],
            refund_id, fee, fee_micro, "", user,
            _BillRow(self.bill, line_no) if self.bill is not None else RawRow(self.positions, tuple(values))))

    def block(self, block: _Block) -> bool:
        """Read a block of rows whole, column by column; False, having read none of it, when it holds
        anything but the common case (then each of its rows is read by `add`)."""
        rows, bill, columns = block.rows, self.bill, self.columns
        count = len(rows)
        if (bill is None or self.places is None or self.summing_up
                or list(map(len, rows)).count(self.width) != count):
            return False
        values = _Columns(rows)
        units, refund = self.units, LineKind.REFUND
        try:
            if values[columns["货币种类"]].count(self.currency) != count or "" in values[columns["微信订单号"]]:
                return False
            kinds = list(map(self.kinds.__getitem__, values[columns["交易状态"]]))
            fees = list(map(self.fees.__getitem__, values[columns["手续费"]]))
            paid = values[columns["应结订单金额"]]
            amounts = list(map(units.__getitem__, paid))
            refund_ids = [""] * count
            refunds = [at for at, kind in enumerate(kinds) if kind is refund]
            if "" in paid and any(not paid[at] for at in range(count) if kinds[at] is not refund):
                return False
            if refunds:
                refunded, ids = values[columns["退款金额"]], values[columns["微信退款单号"]]
                for at in refunds:
                    if not refunded[at] or not ids[at] or ids[at] == "0":
                        return False
                    amounts[at], refund_ids[at] = units[refunded[at]], ids[at]
            if min(amounts) < 0:
                return False
            sums = [(name, sum(map(units.__getitem__, values[position]))) for name, position in self.summed
                    if name != "手续费"]
            times = list(map(self.times.__getitem__, values[columns["交易时间"]]))
        except (KeyError, ValueError):
            return False
        fee_micros = list(map(_first, fees))
        sums.append(("手续费", sum(fee_micros)))
        for name, total in sums:
            self.sums[name] += total
        users: Iterable[str] = values[columns["用户标识"]] if "用户标识" in columns else repeat("")
        line_nos = range(block.line_no, block.line_no + count)
        self.lines.extend(map(
            StatementLine, repeat(SOURCE), line_nos, kinds, amounts, repeat(self.currency), times,
            values[columns["微信订单号"]], values[columns["商户订单号"]], refund_ids, map(_second, fees),
            fee_micros, repeat(""), users, map(_BillRow, repeat(bill), line_nos)))
        return True

    def _amount(self, values: list[str], name: str, places: int) -> int:
        text = values[self.columns[name]]
        try:
            return self.units[text] if text and places == self.places else decimal_units(text, places)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc

    @staticmethod
    def _fee(text: str, places: int) -> tuple[int, int | None]:
        try:
            fee_micro = decimal_units(text, FEE_PLACES)
        except ValueError as exc:
            raise ValueError(f"手续费: {exc}") from exc
        return fee_micro, exact_division(fee_micro, 10 ** (FEE_PLACES - places))

    def _utc(self, text: str) -> str:
        """The UTC form of a 交易时间; its day is one the bill covers."""
        occurred_at = beijing_to_utc(text)
        self.dates.add(text[:10])
        return occurred_at


_after_backtick = operator.itemgetter(slice(1, None))


def _starts_with_backtick(row: list[str]) -> bool:
    return row[0][:1] == "`"


class _Columns:
    """A block's values by column (the first column without the backtick its line starts with), each taken
    from the rows when first asked for: a block is read by a dozen of its columns, not all of them."""

    def __init__(self, rows: list[list[str]]) -> None:
        self._rows = rows
        self._taken: dict[int, list[str]] = {}

    def __getitem__(self, position: int) -> list[str]:
        column = self._taken.get(position)
        if column is None:
            column = list(map(operator.itemgetter(position), self._rows))
            if position == 0:
                column = list(map(_after_backtick, column))
            self._taken[position] = column
        return column
_first, _second = operator.itemgetter(0), operator.itemgetter(1)


class _Bill:
    """A bill's bytes, shared by the rows read from it, and where each of its lines starts (found the first
    time a report asks for a row, not while reading)."""

    __slots__ = ("data", "encoding", "positions", "_starts")

    def __init__(self, data: bytes, encoding: str) -> None:
        self.data, self.encoding = data, encoding
        self.positions: Mapping[str, int] = {}  # by header name, once the header is read
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
        end = starts[line_no] - 1 if line_no < len(starts) else len(self.data)
        line = self.data[starts[line_no - 1]:end].decode(self.encoding)
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
