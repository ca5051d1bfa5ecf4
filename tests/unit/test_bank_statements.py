"""Bank statements (REC-1): MT940, camt.053 and bank CSV exports read into statement lines, exactly or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

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
