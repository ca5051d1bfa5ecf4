"""WeChat Pay's trade bill: read exactly, by column name, checked against its summary, or refused whole."""

from __future__ import annotations

import gzip
import hashlib
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.config import load_config
from infra.standins.bills import wechatpay_trade_bill
from infra.standins.wechatpay import from_config
from orderhub.clock import FixedClock
from orderhub.reconciliation.formats import wechatpay_bill
from orderhub.reconciliation.formats.wechatpay_bill import read_trade_bill
from orderhub.reconciliation.statements import LineKind, Statement, StatementRefused

FIXTURE = Path(__file__).resolve().parents[2] / "events" / "bills" / "wechatpay_trade_all_20261122.csv"
BILL = FIXTURE.read_bytes()


def _table(data: bytes) -> list[list[str]]:
    return [line.split(",") for line in data.decode().split("\r\n") if line]


def _join(rows: list[list[str]]) -> bytes:
    return ("\r\n".join(",".join(row) for row in rows) + "\r\n").encode()


def _edit(data: bytes, row: int, column: str, value: str) -> bytes:
    rows = _table(data)
    rows[row][rows[0].index(column)] = "`" + value
    return _join(rows)


def test_every_field_of_the_answer_key_is_read_exactly() -> None:
    statement = read_trade_bill(BILL)
    first, paid, refund, revoked = statement.lines
    assert statement.source == "wechatpay" and statement.period == "2026-11-22"
    assert (first.kind, first.amount, first.currency, first.occurred_at) == (
        LineKind.PAYMENT, 9990, "CNY", "2026-11-21T16:00:05.000+00:00")
    assert (first.fee, first.fee_micro) == (None, 59940)  # 0.59940 yuan is not a whole fen
    assert (first.transaction_id, first.order_ref, first.line_no) == (
        "4200202611220000010123456789", "M20261121099", 2)
    assert (paid.amount, paid.fee, paid.fee_micro, paid.occurred_at, paid.refund_id) == (
        25800, 155, 155000, "2026-11-22T02:59:58.000+00:00", "")
    assert paid.raw["商户数据包"] == "shop=mall" and paid.raw["付款银行"] == "OTHERS"
    assert paid.counterparty == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    assert (refund.kind, refund.amount, refund.fee, refund.fee_micro, refund.line_no) == (
        LineKind.REFUND, 5800, -35, -35000, 4)
    assert (refund.transaction_id, refund.order_ref, refund.refund_id) == (
        "4200202611220000020987654321", "M20261118001", "50302026112200000312345678901")
    assert refund.raw["商户退款单号"] == "RM20261118001-1" and refund.raw["退款状态"] == "PROCESSING"
    assert (revoked.kind, revoked.amount, revoked.occurred_at, revoked.raw["交易状态"]) == (
        LineKind.OTHER, 1200, "2026-11-22T15:59:59.000+00:00", "REVOKED")
    assert statement.stated_totals == {"总交易单数": 4, "应结订单总金额": 36990, "退款总金额": 5800,
                                       "充值券退款总金额": 0, "手续费总金额": 179940, "订单总金额": 36990,
                                       "申请退款总金额": 5800}


def test_gzip_and_the_hash_over_the_uncompressed_file() -> None:
    sha1 = hashlib.sha1(BILL).hexdigest()  # noqa: S324
    assert read_trade_bill(gzip.compress(BILL), expected_sha1=sha1.upper()) == read_trade_bill(BILL)
    with pytest.raises(StatementRefused, match="SHA1"):
        read_trade_bill(gzip.compress(BILL), expected_sha1=hashlib.sha1(b"other").hexdigest())  # noqa: S324
    with pytest.raises(StatementRefused, match="cut short"):
        read_trade_bill(gzip.compress(BILL)[:-12])


def test_a_gzip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wechatpay_bill, "MAX_UNCOMPRESSED", len(BILL) - 1)
    with pytest.raises(StatementRefused, match="uncompressed"):
        read_trade_bill(gzip.compress(BILL))


@given(st.permutations(range(27)))
def test_columns_in_any_order_give_the_same_lines(order: list[int]) -> None:
    rows = _table(BILL)
    shuffled = [[row[i] for i in order] if len(row) == 27 else row for row in rows]
    got = read_trade_bill(_join(shuffled))
    assert got == read_trade_bill(BILL)


def test_gbk_is_read_as_utf8_is_and_neither_is_refused() -> None:
    assert read_trade_bill(BILL.decode().encode("gbk")) == read_trade_bill(BILL)
    broken = BILL.replace("订单支付".encode(), b"\xff\xfe\xff", 1)
    with pytest.raises(StatementRefused, match="neither UTF-8 nor GBK") as refused:
        read_trade_bill(broken)
    assert refused.value.line_no == 2


@pytest.mark.parametrize(("data", "line_no", "reason"), [
    (_edit(BILL, 2, "应结订单金额", "258.001"), 3, "应结订单金额: more than 2 decimals"),
    (_edit(BILL, 2, "应结订单金额", "2.58e2"), 3, "应结订单金额: not a decimal amount"),
    (_edit(BILL, 1, "手续费", "0.599400"), 2, "手续费: more than 5 decimals"),
    (_edit(BILL, 1, "交易时间", "2026-11-22 24:00:05"), 2, "not a real time"),
    (_edit(BILL, 1, "交易状态", "NOTPAY"), 2, "交易状态 'NOTPAY'"),
    (_edit(BILL, 3, "微信退款单号", "0"), 4, "without 微信退款单号"),
    (_edit(BILL, 2, "应结订单金额", "258.01"), 7, "应结订单总金额 says 369.90, the lines add up to 369.91"),
    (_edit(BILL, 3, "手续费", "-0.35001"), 7, "手续费总金额 says 1.79940, the lines add up to 1.79939"),
    (BILL.replace(b",`shop=mall,", b",shop=mall,", 1), 3, "without its ` prefix"),
    (BILL.replace(b"`0.60%,`258.00,`0.00,`\r\n", b"`0.60%,`258.00,`0.00\r\n", 1), 3, "26 values for 27 columns"),
])
def test_a_bad_line_refuses_the_file_naming_line_and_reason(data: bytes, line_no: int, reason: str) -> None:
    with pytest.raises(StatementRefused) as refused:
        read_trade_bill(data)
    assert refused.value.line_no == line_no and reason in refused.value.reason, refused.value


def test_a_missing_column_or_summary_refuses_the_file() -> None:
    rows = _table(BILL)
    at = rows[0].index("商户订单号")
    without = [row[:at] + row[at + 1:] if len(row) == 27 else row for row in rows]
    with pytest.raises(StatementRefused, match="line 1: missing column 商户订单号"):
        read_trade_bill(_join(without))
    lines = BILL.split(b"\r\n")
    with pytest.raises(StatementRefused, match="总交易单数 says 4, the lines add up to 3"):
        read_trade_bill(b"\r\n".join(lines[:2] + lines[3:]))  # a row lost in the middle
    with pytest.raises(StatementRefused, match="no summary row"):
        read_trade_bill(b"\r\n".join(lines[:4]))  # the download stopped before the summary
    with pytest.raises(StatementRefused, match="without its row"):
        read_trade_bill(b"\r\n".join(lines[:6]))
    with pytest.raises(StatementRefused, match="empty file"):
        read_trade_bill(b"")


def test_a_success_bill_has_no_refund_columns_and_no_refund_total() -> None:
    rows = _table(BILL)
    refund_only = ("微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额")
    keep = [i for i, name in enumerate(rows[0]) if name not in refund_only]
    success = [[row[i] for i in keep] for row in rows[:3]] + [rows[-2],
               ["`2", "`357.90", "`0.00", "`0.00", "`2.14940", "`357.90", "`0.00"]]
    statement = read_trade_bill(_join(success))
    assert [line.amount for line in statement.lines] == [9990, 25800]
    with pytest.raises(StatementRefused, match="退款总金额 is 1.00 but the bill has no column 退款金额"):
        read_trade_bill(_join(success[:-1] + [["`2", "`357.90", "`1.00", "`0.00", "`2.14940", "`357.90", "`0.00"]]))
    refund = [row[i] for i in keep for row in [rows[3]]]
    with pytest.raises(StatementRefused, match="line 4: a refund row in a bill without refund columns"):
        read_trade_bill(_join(success[:3] + [refund] + success[3:]))


def test_a_bill_made_from_the_standins_notifications_reads_back_to_them() -> None:
    start = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    clock = FixedClock(start)
    standin = from_config(load_config(), "http://hub.invalid", clock, rng=random.Random(7))
    paid = standin.pay("M1", 25800, at=start)
    standin.duplicate(standin.deliveries[0].notification)  # delivered twice, billed once
    other = standin.pay("M2", 1999, at=start + timedelta(hours=3))
    clock.advance(3600 * 5)
    # ABNORMAL first, finished the next day: billed on the day it was accepted, as PROCESSING
    abnormal = standin.refund(paid, 5800, status="ABNORMAL")
    standin.refund(paid, 5800, status="SUCCESS", refund_id=abnormal, at=start + timedelta(days=1))
    standin.refund(other, 999, status="CLOSED")  # a closed refund moved nothing
    standin.pay("M3", 500, at=start + timedelta(days=1))  # the next day's

    statement = read_trade_bill(wechatpay_trade_bill(standin, date(2026, 11, 22)))
    assert [(line.kind, line.transaction_id, line.order_ref, line.refund_id, line.amount, line.fee, line.occurred_at)
            for line in statement.lines] == [
        (LineKind.PAYMENT, paid, "M1", "", 25800, 155, "2026-11-22T01:00:00.000+00:00"),
        (LineKind.PAYMENT, other, "M2", "", 1999, 12, "2026-11-22T04:00:00.000+00:00"),
        (LineKind.REFUND, paid, "M1", abnormal, 5800, -35, "2026-11-22T06:00:00.000+00:00")]
    assert statement.lines[2].raw["退款状态"] == "PROCESSING"
    assert [line.order_ref for line in read_trade_bill(wechatpay_trade_bill(standin, date(2026, 11, 23))).lines] == [
        "M3"]


# A day of many rows: read a piece at a time, most of it column by column ------------------------------

HEADER = _table(BILL)[0]
_PAID, _REFUND, _REVOKED = (_table(BILL)[i] for i in (2, 3, 4))


def _units(units: int, places: int) -> str:
    sign = "-" if units < 0 else ""
    whole, part = divmod(abs(units), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"


def _day(rows: list[tuple[str, int, int, int]], newline: str = "\r\n") -> bytes:
    """A bill of (交易状态, amount in fen, fee in 1/100,000 yuan, second of the day) rows, its summary right."""
    at = {name: i for i, name in enumerate(HEADER)}
    table = [HEADER]
    paid = refunded = fees = 0
    for n, (status, amount, fee, second) in enumerate(rows):
        row = list({"SUCCESS": _PAID, "REFUND": _REFUND, "REVOKED": _REVOKED}[status])
        row[at["交易时间"]] = f"`2026-11-22 {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        row[at["微信订单号"]] = f"`42000000{n:020d}"
        row[at["商户订单号"]] = f"`M{n}"
        row[at["手续费"]] = "`" + _units(-fee if status == "REFUND" else fee, 5)
        if status == "REFUND":
            row[at["退款金额"]] = row[at["申请退款金额"]] = "`" + _units(amount, 2)
            row[at["微信退款单号"]] = f"`5030{n:024d}"
            refunded, fees = refunded + amount, fees - fee
        else:
            row[at["应结订单金额"]] = row[at["订单金额"]] = "`" + _units(amount, 2)
            paid, fees = paid + amount, fees + fee
        table.append(row)
    table.append(_table(BILL)[-2])
    table.append(["`" + value for value in (str(len(rows)), _units(paid, 2), _units(refunded, 2), "0.00",
                                            _units(fees, 5), _units(paid, 2), _units(refunded, 2))])
    return (newline.join(",".join(row) for row in table) + newline).encode()


Read = tuple[Statement | None, list[dict[str, str]], tuple[int, str] | None]  # lines, their raw, or the refusal


def _read_both_ways(monkeypatch: pytest.MonkeyPatch, data: bytes) -> tuple[Read, Read]:
    """The bill read with every piece of a few lines taken column by column, and read row by row."""
    def read(block_lines: int) -> Read:
        monkeypatch.setattr(wechatpay_bill, "PIECE", 1024)
        monkeypatch.setattr(wechatpay_bill, "BLOCK_LINES", block_lines)
        try:
            statement = read_trade_bill(data)
        except StatementRefused as refused:
            return None, [], (refused.line_no, refused.reason)
        return statement, [dict(line.raw) for line in statement.lines], None
    return read(2), read(10**9)


_ROWS = st.lists(st.tuples(st.sampled_from(["SUCCESS", "SUCCESS", "REFUND", "REVOKED"]),
                           st.sampled_from([1, 99, 990, 25800, 100000]), st.sampled_from([0, 6, 59940, 155000]),
                           st.integers(0, 86399)), min_size=1, max_size=120)


@given(_ROWS, st.sampled_from(["\r\n", "\n"]))
def test_column_by_column_and_row_by_row_read_a_bill_the_same(rows: list[tuple[str, int, int, int]],
                                                               newline: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        by_block, by_row = _read_both_ways(monkeypatch, _day(rows, newline))
    assert by_block == by_row
    statement, raws, _ = by_block
    assert statement is not None and len(statement.lines) == len(rows)
    assert raws[0].keys() == set(HEADER) and raws[-1]["交易状态"] == rows[-1][0]


_EDITS = [("应结订单金额", "2.58e2"), ("手续费", "0.599400"), ("交易时间", "2026-11-22 24:00:05"),
          ("交易状态", "NOTPAY"), ("货币种类", "JPY"), ("货币种类", "cny"), ("微信订单号", ""), ("退款金额", "-1.00"),
          ("应结订单金额", ""), ("微信退款单号", "0"), ("订单金额", "1.001"), ("商户数据包", "a,b"),
          ("应结订单金额", "-0.01")]


@given(_ROWS, st.data())
def test_a_bad_value_deep_in_a_large_bill_is_refused_as_row_by_row_refuses_it(
        rows: list[tuple[str, int, int, int]], data: st.DataObject) -> None:
    table = _table(_day(rows))
    row = data.draw(st.integers(1, len(rows)))
    column, value = data.draw(st.sampled_from(_EDITS))
    table[row][table[0].index(column)] = "`" + value
    with pytest.MonkeyPatch.context() as monkeypatch:
        by_block, by_row = _read_both_ways(monkeypatch, _join(table))
    assert by_block == by_row


@pytest.mark.parametrize(("column", "value"), _EDITS)
@pytest.mark.parametrize("status", ["SUCCESS", "REFUND"])
def test_a_bad_value_in_the_middle_of_a_block_is_refused_at_its_line(column: str, value: str, status: str) -> None:
    table = _table(_day([(status, 990, 6, second) for second in range(200)]))
    table[150][table[0].index(column)] = "`" + value
    with pytest.MonkeyPatch.context() as monkeypatch:
        by_block, by_row = _read_both_ways(monkeypatch, _join(table))
    assert by_block == by_row
    if (status, column) in {("SUCCESS", "微信退款单号"), ("REFUND", "应结订单金额")}:
        return  # not read from that row: "0" and "" are what such a row has
    refused = by_row[2]
    assert refused is not None and refused[0] in (151, 203), by_row  # at the row, or at the summary it upsets


def test_a_bill_resaved_by_a_spreadsheet_with_a_quoted_comma_is_read_as_csv_reads_it() -> None:
    quoted = BILL.replace("`订单支付,`shop=mall".encode(), '"`订单支付,大号",`shop=mall'.encode(), 1)
    statement = read_trade_bill(quoted.replace(b"\r\n", b"\n"))
    assert statement.lines[1].raw["商品名称"] == "订单支付,大号" and statement.lines[1].amount == 25800
    assert [line.amount for line in statement.lines] == [line.amount for line in read_trade_bill(BILL).lines]


def test_a_line_read_from_the_bill_shows_its_whole_row() -> None:
    table = _table(BILL)
    line = read_trade_bill(BILL).lines[1]
    assert dict(line.raw) == {name: value[1:] for name, value in zip(table[0], table[2], strict=True)}
    assert "'商户数据包': 'shop=mall'" in repr(line.raw)
