"""Bank statements (REC-1): MT940, camt.053 and bank CSV exports read into statement lines, exactly or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhub.reconciliation.formats._bank import AmountError, minor_units
from orderhub.reconciliation.formats.camt053 import read_camt053
from orderhub.reconciliation.formats.mt940 import read_mt940
from orderhub.reconciliation.statements import LineKind, StatementLine, StatementRefused

BANK = Path(__file__).resolve().parents[2] / "events" / "bank"


def _fields(line: StatementLine) -> tuple:
    return (line.line_no, line.kind, line.amount, line.currency, line.occurred_at, line.transaction_id,
            line.order_ref, line.remark, line.counterparty)


# --- amounts -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "thousands", "expected"), [
    ("25800.00", False, 2580000),
    ("1200,5", False, 120050),  # MT940's decimal comma
    ("-1200.50", False, -120050),
    ("12.500", False, 1250),  # trailing zeros past the fen are exact
    ("1,234.5", True, 123450),
    ("1234.5", True, 123450),
])
def test_amounts_are_read_exactly_into_fen(text, thousands, expected):
    assert minor_units(text, "CNY", thousands=thousands) == expected


@pytest.mark.parametrize(("text", "thousands"), [
    ("1,234.5", False),  # grouping only where the export is configured to group
    ("12,34.5", True),  # groups of three or none
    ("1e3", False),  # not how a bank writes money
    ("1e3", True),
    ("-0.001", False),  # not exact to the fen
    ("0.005", True),
    ("", False),
    ("¥12.00", False),
    ("12.", False),
])
def test_amounts_that_are_not_exact_bank_money_are_refused(text, thousands):
    with pytest.raises(AmountError):
        minor_units(text, "CNY", thousands=thousands)


def test_the_minor_unit_follows_the_currency():
    assert minor_units("1200", "JPY") == 1200
    assert minor_units("1.234", "KWD") == 1234
    with pytest.raises(AmountError):
        minor_units("1.5", "JPY")


# --- MT940 ---------------------------------------------------------------------------------------------------

def test_mt940_answer_key():
    statement = read_mt940((BANK / "mt940_icbc.sta").read_bytes(), bank="icbc")
    assert statement.source == "bank:icbc"
    assert statement.stated_totals == {"STMT260314:opening": 12500000, "STMT260314:closing": 14959950}
    assert statement.period == "2026-03-13..2026-03-14"
    assert [_fields(line) for line in statement.lines] == [
        (5, LineKind.PAYMENT, 2580000, "CNY", "2026-03-13T16:00:00+00:00", "ICBC2603140001", "M20260314001",
         "TRANSFER IN SHANGHAI MUYE TRADING CO LTD ORDER M20260314001", ""),
        (8, LineKind.OTHER, 120050, "CNY", "2026-03-13T16:00:00+00:00", "ICBC2603140002", "",
         "REFUND M20260301007", ""),
    ]


def test_mt940_debits_can_be_refunds_by_configuration():
    statement = read_mt940((BANK / "mt940_icbc.sta").read_bytes(), bank="icbc", money_out=LineKind.REFUND)
    assert [line.kind for line in statement.lines] == [LineKind.PAYMENT, LineKind.REFUND]


def test_mt940_whose_balances_do_not_add_up_is_refused_at_the_closing_balance():
    text = (BANK / "mt940_icbc.sta").read_text().replace("149599,50", "149599,51")
    with pytest.raises(StatementRefused) as refused:
        read_mt940(text, bank="icbc")
    assert refused.value.line_no == 10
    assert "opening 12500000 + lines 2459950 != closing 14959951" in refused.value.reason


def test_mt940_with_an_unreadable_line_is_refused_whole_at_that_line():
    text = (BANK / "mt940_icbc.sta").read_text().replace("C25800,00NTRF", "X25800,00NTRF")
    with pytest.raises(StatementRefused) as refused:
        read_mt940(text, bank="icbc")
    assert refused.value.line_no == 5
    assert "M20260314001" not in str(refused.value)  # the refusal says where, not the bank's text


def test_mt940_amount_beyond_the_fen_is_refused():
    text = (BANK / "mt940_icbc.sta").read_text().replace("D1200,5N", "D1200,505N").replace("149599,50", "149599,495")
    with pytest.raises(StatementRefused) as refused:
        read_mt940(text, bank="icbc")
    assert "not exact" in refused.value.reason


# --- camt.053 ------------------------------------------------------------------------------------------------

def test_camt053_answer_key():
    statement = read_camt053((BANK / "camt053_boc.xml").read_bytes(), bank="boc")
    assert statement.source == "bank:boc"
    assert statement.stated_totals == {"STMT-20260314-001:OPBD": 8000000, "STMT-20260314-001:CLBD": 9674568}
    assert statement.period == "2026-03-14T00:00:00+08:00..2026-03-14T23:59:59+08:00"
    assert [_fields(line) for line in statement.lines] == [
        (1, LineKind.PAYMENT, 1888800, "CNY", "2026-03-14T02:21:05+00:00", "BOC2603140000517", "M20260314002",
         "货款 M20260314002", "杭州青禾文具有限公司"),
        (2, LineKind.OTHER, 214232, "CNY", "2026-03-13T16:00:00+00:00", "BOC2603140000733", "",
         "退款 M20260302011", "李某某"),
    ]


@pytest.mark.parametrize("version", range(2, 9))
def test_camt053_versions_02_to_08_are_read(version):
    data = (BANK / "camt053_boc.xml").read_bytes().replace(b"camt.053.001.02", f"camt.053.001.{version:02d}".encode())
    assert len(read_camt053(data, bank="boc").lines) == 2


def test_camt053_of_another_message_is_refused():
    data = (BANK / "camt053_boc.xml").read_bytes().replace(b"camt.053.001.02", b"camt.052.001.02")
    with pytest.raises(StatementRefused, match="not a camt.053"):
        read_camt053(data, bank="boc")


def test_camt053_whose_balances_do_not_add_up_is_refused():
    data = (BANK / "camt053_boc.xml").read_bytes().replace(b"96745.68", b"96745.69")
    with pytest.raises(StatementRefused) as refused:
        read_camt053(data, bank="boc")
    assert "OPBD 8000000 + entries 1674568 != CLBD 9674569" in refused.value.reason


@pytest.mark.parametrize("prolog", [
    b'<!DOCTYPE Document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    b'<!DOCTYPE Document SYSTEM "file:///etc/passwd">',
    b'<!doctype Document>',
])
def test_camt053_with_a_doctype_or_entity_is_refused_before_parsing(prolog):
    data = (BANK / "camt053_boc.xml").read_bytes().replace(b"<Document ", prolog + b"<Document ", 1)
    with pytest.raises(StatementRefused, match="DOCTYPE"):
        read_camt053(data, bank="boc")


@pytest.mark.parametrize(("amount", "reason"), [
    (b"18888.001", "not exact"),
    (b"18,888.00", "not an amount"),
    (b"1.8888e4", "not an amount"),
    (b"-18888.00", "signed Amt"),
])
def test_camt053_amounts_that_are_not_exact_are_refused(amount, reason):
    data = (BANK / "camt053_boc.xml").read_bytes().replace(b">18888.00<", b">" + amount + b"<")
    with pytest.raises(StatementRefused, match=reason) as refused:
        read_camt053(data, bank="boc")
    assert refused.value.line_no == 1


def test_camt053_pending_entry_is_refused():
    data = (BANK / "camt053_boc.xml").read_bytes().replace(b"<Sts>BOOK</Sts>", b"<Sts>PDNG</Sts>", 1)
    with pytest.raises(StatementRefused, match="PDNG"):
        read_camt053(data, bank="boc")


# --- bank CSV by mapping -------------------------------------------------------------------------------------

def _csv(name: str, bank: str, **changes):
    from orderhub.reconciliation.formats.bank_csv import DEFAULT_MAPPINGS, read_bank_csv

    mapping = DEFAULT_MAPPINGS[bank].model_copy(update=changes) if changes else DEFAULT_MAPPINGS[bank]
    return read_bank_csv((BANK / name).read_bytes(), mapping)


def test_icbc_csv_answer_key():
    statement = _csv("icbc_detail.csv", "icbc")
    assert [_fields(line) for line in statement.lines] == [
        (8, LineKind.PAYMENT, 158000, "CNY", "2026-03-13T16:00:00+00:00", "", "", "转账 货款 M20260314003",
         "杭州青禾文具有限公司 6217001234567890"),
        (9, LineKind.OTHER, 3650, "CNY", "2026-03-13T16:00:00+00:00", "", "", "退款 退款 M20260301009",
         "王某某 6228480012345678"),
    ]
    assert statement.lines[0].raw["余额"] == "126,580.00"


def test_ccb_csv_answer_key():
    statement = _csv("ccb_detail.csv", "ccb", money_out="refund")
    assert [_fields(line) for line in statement.lines] == [
        (7, LineKind.PAYMENT, 299990, "CNY", "2026-03-13T16:00:00+00:00", "", "", "转账存入 货款 M20260314004",
         "6222020200998877665/宁波海曙百货有限公司"),
        (8, LineKind.REFUND, 9900, "CNY", "2026-03-13T16:00:00+00:00", "", "", "转账支出 退款 M20260305002",
         "6228480012345678/赵某某"),
    ]


def test_gbk_export_with_serial_time_and_fixed_currency():
    from orderhub.reconciliation.formats.bank_csv import BankCsvMapping, read_bank_csv

    mapping = BankCsvMapping(bank="cmb", encoding="gbk", date="交易日期", date_format="%Y%m%d", time="交易时间",
                             amount="金额", money_in_sign="negative", fixed_currency="CNY", serial="流水号",
                             remark=("用途",))
    data = "交易日期,交易时间,金额,流水号,用途\r\n20260314,09:30:00,-12.00,CMB001,货款\r\n".encode("gbk")
    (line,) = read_bank_csv(data, mapping).lines
    assert _fields(line) == (2, LineKind.PAYMENT, 1200, "CNY", "2026-03-14T01:30:00+00:00", "CMB001", "", "货款", "")


@given(st.permutations(range(15)))
def test_csv_column_order_does_not_change_the_lines(order):
    import csv
    import io

    from orderhub.reconciliation.formats.bank_csv import DEFAULT_MAPPINGS, read_bank_csv

    text = (BANK / "icbc_detail.csv").read_bytes().decode("utf-8-sig")
    head, table = text.split("\r\n", 6)[:6], text.split("\r\n", 6)[6]
    rows = list(csv.reader(io.StringIO(table)))
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(
        [[row[i] if i < len(row) else "" for i in order] for row in rows])
    shuffled = "\r\n".join(head) + "\r\n" + out.getvalue()
    expected = _csv("icbc_detail.csv", "icbc").lines
    assert read_bank_csv(shuffled.encode("utf-8"), DEFAULT_MAPPINGS["icbc"]).lines == expected


@pytest.mark.parametrize(("old", "new", "line_no", "reason"), [
    ('"1,580.00",,人民币,"1,580.00"', '"1,580.00",,人民币,"1e3"', 8, "not an amount"),
    (',36.5,人民币,,36.5,', ',36.5,人民币,,-0.001,', 9, "not exact"),
    (',36.5,人民币,,36.5,', ',36.5,人民币,,-36.5,', 9, "signed amount"),
    (',36.5,人民币,,36.5,', ',36.5,人民币,,0.001,', 9, "not exact"),
    (',36.5,人民币,,36.5,', ',36.5,人民币,9,36.5,', 9, "both in and out"),
    ("2026-03-14,退款", "2026/03/14,退款", 9, "date"),
    (',36.5,人民币,,36.5,人民币', ',36.5,人民币,,36.5,日元', 9, "not exact"),
    (',36.5,人民币,,36.5,人民币', ',36.5,人民币,,36.5,卢布', 9, "unknown currency"),
    ("记账金额(支出)", "记账金额（支出）", 7, "no column"),
])
def test_a_bad_csv_row_refuses_the_file_with_its_line(old, new, line_no, reason):
    from orderhub.reconciliation.formats.bank_csv import DEFAULT_MAPPINGS, read_bank_csv

    text = (BANK / "icbc_detail.csv").read_bytes().decode("utf-8-sig")
    assert old in text
    with pytest.raises(StatementRefused, match=reason) as refused:
        read_bank_csv(text.replace(old, new, 1).encode("utf-8"), DEFAULT_MAPPINGS["icbc"])
    assert refused.value.line_no == line_no


def test_a_mapping_must_say_one_way_to_the_amount_and_the_currency():
    from pydantic import ValidationError

    from orderhub.reconciliation.formats.bank_csv import BankCsvMapping

    with pytest.raises(ValidationError):
        BankCsvMapping(bank="x1", date="d", amount="a", credit="c", debit="e", fixed_currency="CNY")
    with pytest.raises(ValidationError):
        BankCsvMapping(bank="x1", date="d", amount="a")
