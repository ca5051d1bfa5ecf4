"""Alipay's business detail bill: a GBK zip read exactly, by column name, checked against its 汇总, or refused."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.config import load_config
from infra.standins.alipay import AlipayStandIn
from infra.standins.bills import alipay_business_bill
from orderhub.clock import FixedClock
from orderhub.reconciliation.formats import alipay_bill
from orderhub.reconciliation.formats.alipay_bill import read_business_bill
from orderhub.reconciliation.statements import LineKind, StatementRefused

FIXTURE = Path(__file__).resolve().parents[2] / "events" / "bills" / "alipay_business_20261122.zip"
DETAIL, SUMMARY = "20880000000000000156_20261122_业务明细.csv", "20880000000000000156_20261122_业务明细(汇总).csv"
HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
          "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
          "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注")
ROWS = [
    "2026112222001419930000000001\t,M20261122001\t,交易\t,订单支付,2026-11-22 10:59:38,2026-11-22 10:59:58,\t,\t,\t,\t,"
    "138***@example.com\t,258.00,258.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,-1.55,0.00,mall",
    "2026112222001419930000000001\t,M20261122001\t,退款\t,订单支付,2026-11-22 10:59:38,2026-11-22 13:00:00,\t,\t,\t,\t,"
    "138***@example.com\t,-58.00,-58.00,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,RF1\t,0.35,0.00,",
    "2026112222001419930000000002\t,M20261121999\t,交易\t,订单支付,2026-11-21 23:59:50,2026-11-22 00:00:01,\t,\t,\t,\t,"
    "159***@example.com\t,0.01,0.01,0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,\t,0.00,0.00,",
]
SUMMARY_HEADER = ("门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,"
                  "商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）")
TOTAL = "合计,,2,1,200.01,200.01,0.00,0.00,0.00,-1.20,0.00,198.81"


def _detail(header: str = HEADER, rows: list[str] = ROWS, closed: bool = True) -> str:
    head = ["#支付宝业务明细查询", "#账号：[20880000000000000156]",
            "#起始日期：[2026年11月22日 00:00:00]   终止日期：[2026年11月23日 00:00:00]",
            "#-----------------------------------------业务明细列表----------------------------------------", header]
    tail = ["#-----------------------------------------业务明细列表结束------------------------------------",
            "#交易合计：2笔，商家实收共258.01元，商家优惠共0.00元",
            "#退款合计：1笔，商家实收退款共-58.00元，商家优惠退款共0.00元",
            "#导出时间：[2026年11月23日 09:00:00]"]
    return "\r\n".join([*head, *rows, *(tail if closed else [])]) + "\r\n"


def _summary(total: str = TOTAL) -> str:
    return "\r\n".join([
        "#支付宝业务汇总查询", "#账号：[20880000000000000156]",
        "#-----------------------------------------业务汇总列表----------------------------------------",
        SUMMARY_HEADER, "M01,门店一,2,1,200.01,200.01,0.00,0.00,0.00,-1.20,0.00,198.81", total,
        "#-----------------------------------------业务汇总列表结束------------------------------------"]) + "\r\n"


def _zip(members: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text if isinstance(text, bytes) else text.encode("gbk"))
    return out.getvalue()


def _bill(detail: str | None = None, summary: str | None = None) -> bytes:
    return _zip({DETAIL: detail or _detail(), SUMMARY: summary or _summary()})


def test_the_answer_key_fixture_is_the_bill_these_tests_build() -> None:
    assert read_business_bill(FIXTURE.read_bytes()) == read_business_bill(_bill())


def test_every_field_is_read_exactly() -> None:
    statement = read_business_bill(_bill())
    paid, refund, early = statement.lines
    assert (statement.source, statement.period) == ("alipay", "2026-11-22")
    assert (paid.kind, paid.amount, paid.currency, paid.fee, paid.fee_micro, paid.occurred_at, paid.line_no) == (
        LineKind.PAYMENT, 25800, "CNY", 155, 155000, "2026-11-22T02:59:58.000+00:00", 6)
    assert (paid.transaction_id, paid.order_ref, paid.refund_id, paid.remark, paid.counterparty) == (
        "2026112222001419930000000001", "M20261122001", "", "mall", "138***@example.com")
    assert (refund.kind, refund.amount, refund.fee, refund.refund_id, refund.occurred_at) == (
        LineKind.REFUND, 5800, -35, "RF1", "2026-11-22T05:00:00.000+00:00")
    assert refund.raw["订单金额（元）"] == "-58.00" and refund.raw["业务类型"] == "退款"
    assert (early.amount, early.fee, early.occurred_at) == (1, 0, "2026-11-21T16:00:01.000+00:00")
    assert statement.stated_totals == {"交易订单总笔数": 2, "退款订单总笔数": 1, "订单金额（元）": 20001,
                                       "商家实收（元）": 20001, "服务费（元）": -120, "分润（元）": 0}


@given(st.permutations(range(25)))
def test_columns_in_any_order_give_the_same_lines(order: list[int]) -> None:
    def shuffle(line: str) -> str:
        cells = line.split(",")
        return ",".join(cells[i] for i in order)

    got = read_business_bill(_bill(_detail(shuffle(HEADER), [shuffle(row) for row in ROWS])))
    assert got == read_business_bill(_bill())


@pytest.mark.parametrize(("data", "line_no", "reason"), [
    (_bill(_detail(rows=[ROWS[0].replace("258.00,258.00", "258.00,258.001"), *ROWS[1:]])), 6,
     "商家实收（元）: more than 2 decimals"),
    (_bill(_detail(rows=[ROWS[0], ROWS[1].replace("-58.00,-58.00", "58.00,58.00"), ROWS[2]])), 7,
     "a refund of positive 商家实收"),
    (_bill(_detail(rows=[*ROWS[:2], ROWS[2].replace("交易\t", "冻结\t")])), 8, "业务类型 '冻结'"),
    (_bill(_detail(rows=[*ROWS[:2], ROWS[2][:-1]])), 8, "24 values for 25 columns"),
    (_bill(_detail(HEADER.replace("商户订单号", "订单号"))), 5, "missing column 商户订单号"),
    (_bill(_detail(rows=ROWS[:2])), 0, "合计 交易订单总笔数 says 2, the lines of"),
    (_bill(_detail(closed=False)), 8, "no end-of-table marker"),
    (_bill(summary=_summary(TOTAL.replace("-1.20", "-1.21"))), 0, "合计 服务费（元） says -1.21"),
    (_zip({DETAIL: _detail()}), 0, "no …_业务明细(汇总).csv in the zip"),
    (_zip({SUMMARY: _summary()}), 0, "no …_业务明细.csv in the zip"),
    (_zip({DETAIL: _detail().encode("utf-8"), SUMMARY: _summary()}), 1, "not GBK text"),
    (b"PK\x03\x04 not a zip", 0, "not a readable zip"),
])
def test_a_bad_bill_is_refused_naming_line_and_reason(data: bytes, line_no: int, reason: str) -> None:
    with pytest.raises(StatementRefused) as refused:
        read_business_bill(data)
    assert refused.value.line_no == line_no and reason in refused.value.reason, refused.value


def test_a_zip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alipay_bill, "MAX_UNCOMPRESSED", 1000)
    with pytest.raises(StatementRefused, match="uncompressed"):
        read_business_bill(_bill())
    monkeypatch.undo()
    with pytest.raises(StatementRefused, match="17 files in the zip"):
        read_business_bill(_zip({f"{i}.csv": "" for i in range(17)}))


def test_a_bill_made_from_the_standins_notifications_reads_back_to_them() -> None:
    start = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    clock = FixedClock(start + timedelta(days=2))
    alipay = AlipayStandIn.from_config(load_config(), "http://hub.invalid", clock,
                                       transport=lambda *_: (200, "success"))
    first = alipay.pay("M1", 25800, start)
    second = alipay.pay("M2", 1999, start + timedelta(hours=1))
    alipay.refund(first, 5800, out_biz_no="RF1", at=start + timedelta(hours=2))
    alipay.refund(first, 20000, out_biz_no="RF2", at=start + timedelta(days=1))  # the next day's
    alipay.deliver_due()

    statement = read_business_bill(alipay_business_bill(alipay, date(2026, 11, 22)))
    assert [(line.kind, line.transaction_id, line.order_ref, line.refund_id, line.amount, line.fee, line.occurred_at)
            for line in statement.lines] == [
        (LineKind.PAYMENT, first, "M1", "", 25800, 155, "2026-11-22T02:00:00.000+00:00"),
        (LineKind.PAYMENT, second, "M2", "", 1999, 12, "2026-11-22T03:00:00.000+00:00"),
        (LineKind.REFUND, first, "M1", "RF1", 5800, -35, "2026-11-22T04:00:00.000+00:00")]
    next_day = read_business_bill(alipay_business_bill(alipay, date(2026, 11, 23)))
    assert [(line.kind, line.refund_id, line.amount) for line in next_day.lines] == [(LineKind.REFUND, "RF2", 20000)]
