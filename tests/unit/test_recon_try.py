"""Finance tries a bill by hand: `orderhub ledger export` writes a day's records as JSON lines that read back
exactly, and `orderhub recon try` matches such a file against a statement file, writing the run's reports."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.cli import ledger as ledger_cli
from infra.cli.main import main
from infra.cli.recon import covers, run_time
from orderhub.clock import utc_iso
from orderhub.models.order import LedgerLine, MethodClass, MoneyKind, MoneyState, Order
from orderhub.payments.ledger import InMemoryLedger, LedgerRecord, business_date
from orderhub.reconciliation.ledger_export import LedgerExportRefused, read_records, write_records

ROOT = Path(__file__).resolve().parents[2]
BILLS = ROOT / "events" / "bills"
WECHAT_BILL = BILLS / "wechatpay_trade_all_20261122.csv"
ALIPAY_BILL = BILLS / "alipay_business_20261122.zip"
MT940 = ROOT / "events" / "bank" / "mt940_icbc.sta"
DAY = "2026-11-22"
REPORTS = ("report.json", "differences.csv", "report.html", "manifest.json")


def line(reference: str, amount: int, at: str, *, provider: str = "wechatpay", kind: MoneyKind = MoneyKind.PAYMENT,
         state: MoneyState = MoneyState.CONFIRMED, method: MethodClass = MethodClass.ONLINE,
         **fields: object) -> LedgerLine:
    return LedgerLine(provider=provider, kind=kind, reference=reference, state=state, amount=amount, currency="CNY",
                      method=method, occurred_at=at, business_date=business_date(at), **fields)


def record(ledger_line: LedgerLine, number: str, **fields: str) -> LedgerRecord:
    return LedgerRecord(line=ledger_line, order_id=f"oh_{number}", channel="mall", channel_order_id=number,
                        source=ledger_line.provider, source_event_id=f"evt-{number}",
                        booked_at="2026-11-22T16:30:00.000+00:00", **fields)


# --- the export's codec -----------------------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # quotes, newlines, 汉字: all kept as written
_REFERENCE = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"], exclude_characters="#@"), min_size=1,
                     max_size=20)
_INSTANT = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))


@st.composite
def records(draw: st.DrawFn) -> LedgerRecord:
    at = utc_iso(draw(_INSTANT))
    ledger_line = LedgerLine(
        provider=draw(st.sampled_from(("wechatpay", "alipay", "bank", "taobao"))),
        kind=draw(st.sampled_from(MoneyKind)), reference=draw(_REFERENCE), state=draw(st.sampled_from(MoneyState)),
        amount=draw(st.integers(0, 10**15)), currency=draw(st.sampled_from(("CNY", "USD", "JPY", ""))),
        method=draw(st.sampled_from(MethodClass)), fee=draw(st.none() | st.integers(-10**9, 10**9)),
        payment_reference=draw(_TEXT), merchant_reference=draw(_TEXT), occurred_at=at,
        business_date=business_date(at), cumulative=draw(st.booleans()), note=draw(_TEXT))
    return LedgerRecord(line=ledger_line, order_id=draw(st.sampled_from(("oh_a", "oh_b", "oh_c"))),
                        channel=draw(_TEXT), channel_order_id=draw(_TEXT), source=draw(_TEXT),
                        source_event_id=draw(_TEXT), booked_at=draw(_TEXT), account=draw(_TEXT),
                        payload=draw(_TEXT), actor=draw(_TEXT))


@given(st.lists(records(), max_size=8, unique_by=lambda r: (r.record_id, r.order_id)), st.data())
def test_an_export_reads_back_as_its_records_in_any_order_of_writing(found, data):
    written = write_records(found)
    # Every field comes back but the payload, which the export leaves out; lines are sorted by record id
    expected = sorted((replace(r, payload="") for r in found), key=lambda r: (r.record_id, r.order_id))
    assert read_records(written) == expected
    # And the records in any other order are the same bytes
    assert write_records(data.draw(st.permutations(found))) == written
    assert written.count(b"\n") == len(found)


def test_an_export_line_is_one_json_object_of_every_field_but_the_payload():
    paid = record(line("4200000001", 25800, "2026-11-22T02:59:58.000+00:00", note="买家备注"), "M1",
                  payload='{"openid":"o-secret"}', actor="cli:wang")
    (row,) = [json.loads(text) for text in write_records([paid]).decode().splitlines()]
    assert list(row)[:4] == ["record_id", "order_id", "channel", "channel_order_id"]
    assert row["record_id"] == "wechatpay:payment:4200000001#confirmed@2026-11-22T02:59:58.000+00:00"
    assert row["amount"] == 25800 and row["fee"] is None and row["note"] == "买家备注" and row["actor"] == "cli:wang"
    assert "payload" not in row and b"o-secret" not in write_records([paid])
    assert "买家备注".encode() in write_records([paid])  # text as written, not \u-escaped


GOOD = write_records([record(line("T1", 100, "2026-11-22T02:00:00.000+00:00"), "M1")]).decode().strip()


@pytest.mark.parametrize(("text", "line_no", "says"), [
    ("\n" + GOOD.replace('"amount":100', '"amount":100.0'), 2, "amount"),
    (GOOD.replace('"amount":100', '"amount":"100"'), 1, "amount"),
    (GOOD.replace('"amount":100', '"amount":NaN'), 1, "not a JSON object"),
    (GOOD.replace('"kind":"payment"', '"kind":"gift"'), 1, "kind"),
    (GOOD.replace('"note"', '"notes"'), 1, "no such field: notes"),
    (GOOD.replace('"order_id":"oh_M1",', ""), 1, "without order_id"),
    (GOOD.replace('"actor":""', '"actor":7'), 1, "not text: actor"),
    (GOOD.replace('"reference":"T1"', '"reference":"T2"'), 1, "record_id"),
    (GOOD.replace("}", ',"amount":1}'), 1, "'amount' twice"),
    (GOOD + "\n" + GOOD, 2, "again (also line 1)"),
    ("[1, 2]", 1, "not a JSON object"),
])
def test_a_line_that_is_not_exactly_a_record_refuses_the_export_with_its_line(text, line_no, says):
    with pytest.raises(LedgerExportRefused) as refused:
        read_records(text.encode())
    assert refused.value.line_no == line_no and says in refused.value.reason


def test_an_export_written_by_hand_may_leave_out_what_has_a_default_and_carry_a_bom():
    text = ('{"order_id":"oh_M1","channel_order_id":"M1","provider":"bank","kind":"payment","reference":"ICBC-1",'
            '"state":"pending","amount":129900,"currency":"CNY","method":"bank_transfer",'
            '"occurred_at":"2026-11-22T08:20:00.000+00:00","business_date":"2026-11-22"}\n\n')
    (found,) = read_records("\ufeff".encode() + text.encode())
    assert found.record_id == "bank:payment:ICBC-1#pending@2026-11-22T08:20:00.000+00:00"
    assert (found.channel, found.source, found.line.fee, found.line.note) == ("", "", None, "")


class Orders:
    def __init__(self, *orders: Order) -> None:
        self.orders = {o.order_id: o for o in orders}

    def get_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)


def test_ledger_export_writes_the_days_records_and_their_orders_others_sorted_by_record_id(monkeypatch, tmp_path):
    # Given a payment first reported on the 21st and refunded on the 22nd, and another order paid on the 22nd
    earlier = line("T-EARLY", 5000, "2026-11-21T03:00:00.000+00:00")
    refund = line("R-1", 2000, "2026-11-22T04:00:00.000+00:00", kind=MoneyKind.REFUND, payment_reference="T-EARLY")
    later = line("T-LATE", 9900, "2026-11-22T06:00:00.000+00:00")
    ledger = InMemoryLedger()
    ledger.book([record(earlier, "M1", payload="p"), record(refund, "M1", payload="p"), record(later, "M2")])
    orders = Orders(Order(order_id="oh_M1", channel="mall", channel_order_id="M1",
                          ledger={earlier.record_id: earlier, refund.record_id: refund}))
    monkeypatch.setenv("ORDERHUB_CONFIG", str(ROOT / "config" / "local.toml"))
    monkeypatch.setattr(ledger_cli, "payments_ledger", lambda args, config: ledger)
    monkeypatch.setattr(ledger_cli, "order_store", lambda args, config: orders)
    target = tmp_path / "2026-11-22.jsonl"
    # When the 22nd is exported
    assert main(["ledger", "export", DAY, "--out", str(target)]) == 0
    # Then the file has the day's records and the earlier one of their order, by record id, as the ledger holds them
    found = read_records(target.read_bytes())
    assert [r.record_id for r in found] == sorted([earlier.record_id, refund.record_id, later.record_id])
    assert {r.record_id: r.source_event_id for r in found} == {
        refund.record_id: "evt-M1", later.record_id: "evt-M2", earlier.record_id: ""}  # the order lists it: no source
    assert all(r.payload == "" for r in found)
    # And a day that is not one is refused
    assert main(["ledger", "export", "2026-11-31"]) == 2


# --- recon try --------------------------------------------------------------------------------------------------

def at(beijing: str) -> str:
    """'2026-11-22 10:59:58' (Beijing) -> the stored UTC time."""
    return utc_iso(datetime.fromisoformat(beijing + "+08:00"))


def wechatpay_ledger() -> list[LedgerRecord]:
    """The hub's side of the WeChat Pay bill of 2026-11-22, with differences planted: the 00:00:05 payment's
    callback never came, the refund was booked as 60.00 instead of 58.00, a payment of 23:55 is not on this
    bill; and what the run must leave out: a reversed payment, an Alipay payment, a payment of the day before."""
    paid = line("4200202611220000020987654321", 25800, at("2026-11-22 10:59:58"))
    return [
        record(paid, "M20261118001"),
        record(line("50302026112200000312345678901", 6000, at("2026-11-22 13:00:00"), kind=MoneyKind.REFUND,
                    payment_reference=paid.reference, merchant_reference="RM20261118001-1"), "M20261118001"),
        record(line("4200202611220000050000000055", 8800, at("2026-11-22 23:55:00")), "M20261122555"),
        record(line("4200202611220000060000000066", 1000, at("2026-11-22 09:00:00"), state=MoneyState.REVERSED),
               "M20261122666"),
        record(line("2026112222001419930000000001", 25800, at("2026-11-22 10:59:58"), provider="alipay"),
               "M20261122001"),
        record(line("4200202611210000070000000077", 4200, at("2026-11-21 12:00:00")), "M20261121777"),
    ]


def alipay_ledger(*, with_the_midnight_payment: bool = True) -> list[LedgerRecord]:
    """The hub's side of the Alipay bill of 2026-11-22 as the Alipay channel books it (a refund as the trade's
    refunded total, referenced by its out_request_no)."""
    trade = "2026112222001419930000000001"
    found = [record(line(trade, 25800, at("2026-11-22 10:59:58"), provider="alipay"), "M20261122001"),
             record(line("RF1", 5800, at("2026-11-22 13:00:00"), provider="alipay", kind=MoneyKind.REFUND,
                         payment_reference=trade, cumulative=True), "M20261122001")]
    if with_the_midnight_payment:
        found.append(record(line("2026112222001419930000000002", 1, at("2026-11-22 00:00:01"), provider="alipay"),
                            "M20261121999"))
    return found


def try_files(tmp_path: Path, records_: list[LedgerRecord], statement: Path, fmt: str, source: str,
              day: str = DAY, out: str = "out") -> tuple[int, Path]:
    export = tmp_path / f"ledger-{source}-{day}.jsonl"
    export.write_bytes(write_records(records_))
    target = tmp_path / out
    code = main(["recon", "try", "--ledger", str(export), "--statement", str(statement), "--format", fmt,
                 "--source", source, "--date", day, "--out", str(target)])
    return code, target


def differences(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((out / "differences.csv").read_bytes().decode("utf-8-sig"))))


def test_the_wechatpay_bill_against_a_ledger_with_planted_differences_breaks_with_each_labelled(tmp_path, capsys):
    code, out = try_files(tmp_path, wechatpay_ledger(), WECHAT_BILL, "wechatpay", "wechatpay")
    assert code == 1
    report = json.loads((out / "report.json").read_bytes())
    summary = report["summary"]
    assert summary["verdict"] == "BREAKS"
    # The reversed payment, the Alipay payment and the day before's payment are not the day's WeChat Pay money
    assert (summary["ledger_movements"], summary["statement_lines"], summary["matched_lines"]) == (3, 4, 1)
    assert summary["differences_by_label"] == {"callback_delayed": 1, "cross_day_timing": 1,
                                               "refund_not_synced": 1, "unclassified": 1}
    assert sorted((d["label"], d["outcome"], d["order_ref"], d["statement_lines"], d["difference"])
                  for d in differences(out)) == [
        ("callback_delayed", "missing_in_ledger", "M20261121099", "2", "99.90 CNY"),
        ("cross_day_timing", "missing_in_statement", "M20261122555", "", "-88.00 CNY"),
        ("refund_not_synced", "amount_differs", "M20261118001", "4", "-2.00 CNY"),
        ("unclassified", "missing_in_ledger", "M20261122777", "5", "12.00 CNY"),  # the REVOKED payment-code line
    ]
    printed = capsys.readouterr().out
    assert "wechatpay 2026-11-22: BREAKS" in printed
    assert "match rate 25.00%: 1 of 4 statement lines" in printed
    assert "differences: callback_delayed 1, cross_day_timing 1, refund_not_synced 1, unclassified 1" in printed
    assert f"report: {out / 'report.html'}" in printed
    assert "BREAKS" in (out / "report.html").read_text()


def test_the_alipay_bill_against_its_whole_ledger_is_reconciled_and_without_a_late_callback_pending(tmp_path, capsys):
    code, out = try_files(tmp_path, alipay_ledger(), ALIPAY_BILL, "alipay", "alipay", out="whole")
    assert code == 0
    assert json.loads((out / "report.json").read_bytes())["summary"]["verdict"] == "RECONCILED"
    assert differences(out) == []
    assert "alipay 2026-11-22: RECONCILED\n  match rate 100.00%: 3 of 3 statement lines, 3 of 3 ledger" \
           in capsys.readouterr().out
    # When the 0.01 payment's callback has not come: it closes itself, the day is reconciled with it pending
    code, out = try_files(tmp_path, alipay_ledger(with_the_midnight_payment=False), ALIPAY_BILL, "alipay", "alipay",
                          out="late")
    assert code == 0
    summary = json.loads((out / "report.json").read_bytes())["summary"]
    assert (summary["verdict"], summary["differences_by_label"]) == ("RECONCILED_WITH_PENDING", {"callback_delayed": 1})


def test_a_bank_statement_matches_the_transfers_finance_recorded(tmp_path):
    transfer = line("ICBC2603140001", 2580000, "2026-03-14T01:30:00.000+00:00", provider="bank",
                    state=MoneyState.PENDING, method=MethodClass.BANK_TRANSFER)
    code, out = try_files(tmp_path, [record(transfer, "M20260314001")], MT940, "mt940:icbc", "bank",
                          day="2026-03-14")
    summary = json.loads((out / "report.json").read_bytes())["summary"]
    # The transfer is matched by the bank's reference; the debit line nobody booked is a break
    assert (code, summary["verdict"], summary["matched_lines"]) == (1, "BREAKS", 1)
    assert summary["differences_by_label"] == {"unclassified": 1}
    assert summary["run_at"] == "2026-03-14T16:00:00.000+00:00"  # the end of the statement's closing day


def test_the_same_files_give_the_same_bytes_wherever_they_are_and_whenever_they_run(tmp_path):
    code, first = try_files(tmp_path, wechatpay_ledger(), WECHAT_BILL, "wechatpay", "wechatpay", out="first")
    # The same bill under another name, in another folder
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    copy = elsewhere / "bill.csv"
    copy.write_bytes(WECHAT_BILL.read_bytes())
    again, second = try_files(elsewhere, wechatpay_ledger(), copy, "wechatpay", "wechatpay", out="second")
    assert code == again == 1
    assert {name: (first / name).read_bytes() for name in REPORTS} == \
           {name: (second / name).read_bytes() for name in REPORTS}
    manifest = json.loads((first / "manifest.json").read_bytes())
    assert sorted(manifest["inputs"]) == ["ledger", "statement"]
    assert manifest["inputs"]["statement"]["bytes"] == len(WECHAT_BILL.read_bytes())
    # The run's time is the bill's: the end of its business day, not the clock's
    assert json.loads((first / "report.json").read_bytes())["summary"]["run_at"] == "2026-11-22T16:00:00.000+00:00"


def test_without_out_the_reports_go_to_a_folder_named_by_source_and_day(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    export = tmp_path / "ledger.jsonl"
    export.write_bytes(write_records(alipay_ledger()))
    assert main(["recon", "try", "--ledger", str(export), "--statement", str(ALIPAY_BILL), "--format", "alipay",
                 "--source", "alipay", "--date", DAY]) == 0
    folder = tmp_path / "recon-alipay-2026-11-22"
    assert sorted(p.name for p in folder.iterdir()) == sorted(REPORTS)
    assert "recon-alipay-2026-11-22/report.html" in capsys.readouterr().out


def test_an_empty_ledger_export_is_incomplete_never_reconciled(tmp_path):
    code, out = try_files(tmp_path, [], ALIPAY_BILL, "alipay", "alipay")
    assert code == 1
    assert json.loads((out / "report.json").read_bytes())["summary"]["verdict"] == "INCOMPLETE"


def test_a_refused_statement_exits_2_with_its_line_and_reason_and_writes_nothing(tmp_path, capsys):
    # A bill cut short: the 258.00 payment's row is gone, so the rows no longer add up to the summary row
    rows = WECHAT_BILL.read_bytes().decode().split("\n")
    cut = tmp_path / "cut.csv"
    cut.write_bytes("\n".join(rows[:2] + rows[3:]).encode())
    code, out = try_files(tmp_path, wechatpay_ledger(), cut, "wechatpay", "wechatpay")
    assert code == 2
    err = capsys.readouterr().err
    # the summary's values row, which the lines no longer add up to
    assert err.startswith("statement refused: wechatpay line 6: 总交易单数 says 4, the lines add up to 3")
    assert not out.exists()


@pytest.mark.parametrize(("argv", "says"), [
    (["--format", "alipay", "--source", "wechatpay"], "--source alipay"),
    (["--format", "bank-csv", "--source", "bank"], "bank-csv:ccb, bank-csv:icbc"),
    (["--format", "ofx", "--source", "bank"], "is not one of"),
    (["--format", "wechatpay", "--source", "wechatpay", "--date", "2026-11-23"], "not 2026-11-23"),
    (["--format", "wechatpay", "--source", "wechatpay", "--date", "2026-02-30"], "not a date"),
    (["--format", "wechatpay", "--source", "wechatpay", "--ledger", "missing.jsonl"], "cannot read the ledger export"),
    (["--format", "wechatpay", "--source", "wechatpay", "--ledger", "bad.jsonl"], "ledger export line 1: "),
])
def test_bad_input_exits_2_and_says_why(tmp_path, monkeypatch, capsys, argv, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.jsonl").write_bytes(write_records(wechatpay_ledger()))
    (tmp_path / "bad.jsonl").write_bytes(b'{"amount": 1.5}\n')
    base = {"--ledger": "good.jsonl", "--statement": str(WECHAT_BILL), "--date": DAY}
    given_ = dict(zip(argv[::2], argv[1::2], strict=True))
    args = [part for key, value in (base | given_).items() for part in (key, value)]
    assert main(["recon", "try", *args]) == 2
    assert says in capsys.readouterr().err
    assert not any(tmp_path.glob("recon-*"))


@pytest.mark.parametrize(("period", "day", "covered", "run_at"), [
    ("2026-11-22", "2026-11-22", True, "2026-11-22T16:00:00.000+00:00"),
    ("2026-11-22", "2026-11-23", False, "2026-11-22T16:00:00.000+00:00"),
    ("2026-03-13..2026-03-14", "2026-03-14", True, "2026-03-14T16:00:00.000+00:00"),
    ("2026-03-14T00:00:00+08:00..2026-03-14T23:59:59+08:00", "2026-03-14", True, "2026-03-14T15:59:59.000+00:00"),
    ("2026-03-01..2026-03-02, 2026-03-05..2026-03-06", "2026-03-05", True, "2026-03-06T16:00:00.000+00:00"),
    ("", "2026-03-14", None, "2026-03-14T16:00:00.000+00:00"),  # a bank CSV names no period: the day given
])
def test_the_statements_period_decides_its_day_and_the_runs_time(period, day, covered, run_at):
    assert covers(period, day, "Asia/Shanghai") is covered
    assert run_time(period, day, "Asia/Shanghai") == run_at
