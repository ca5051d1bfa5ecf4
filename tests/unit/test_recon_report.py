"""A run's verdict, reports and manifest: never green on no data, byte-identical on the same inputs."""

from __future__ import annotations

import csv
import io
import json

from unit.test_matcher import LEDGER, STATEMENT

from orderhub.reconciliation.matcher import match
from orderhub.reconciliation.report import RunInputs, Verdict, reports, verdict
from orderhub.reconciliation.statements import Statement

BILL = b"\xef\xbb\xbfwechatpay bill bytes as read"


def inputs(ledger=LEDGER, lines=STATEMENT, statement=True) -> RunInputs:
    return RunInputs("2026-12-06", "wechatpay", ledger,
                     Statement("wechatpay", tuple(lines)) if statement else None,
                     {"statement": BILL}, "2026-12-07T02:30:00.000+00:00")


def test_a_missing_or_empty_side_is_incomplete_never_green():
    assert verdict(inputs(statement=False), match(LEDGER, [])) is Verdict.INCOMPLETE
    assert verdict(inputs(lines=[]), match(LEDGER, [])) is Verdict.INCOMPLETE
    assert verdict(inputs(ledger=[]), match([], STATEMENT)) is Verdict.INCOMPLETE


def test_verdicts_follow_what_differs():
    matched_only = [LEDGER[0]], [STATEMENT[0]]
    assert verdict(inputs(*matched_only), match(*matched_only)) is Verdict.RECONCILED
    late = [LEDGER[0]], [STATEMENT[0], *[li for li in STATEMENT if li.line_no == 11]]  # a callback delayed
    assert verdict(inputs(*late), match(*late)) is Verdict.RECONCILED_WITH_PENDING
    assert verdict(inputs(), match(LEDGER, STATEMENT)) is Verdict.BREAKS


def test_a_rerun_on_the_same_inputs_gives_the_same_bytes_and_the_manifest_names_them():
    first = reports(inputs(), match(LEDGER, STATEMENT))
    again = reports(inputs(), match(list(reversed(LEDGER)), list(reversed(STATEMENT))))
    assert first == again
    manifest = json.loads(first["manifest.json"])
    assert set(manifest["outputs"]) == {"report.json", "differences.csv", "report.html"}
    assert manifest["verdict"] == "BREAKS" and manifest["counts"]["differences"] == 8


def test_the_csv_lists_every_difference_with_exact_amounts_and_the_json_the_figures():
    files = reports(inputs(), match(LEDGER, STATEMENT))
    rows = list(csv.DictReader(io.StringIO(files["differences.csv"].decode("utf-8-sig"))))
    assert len(rows) == 8
    (fee,) = [r for r in rows if r["label"] == "fee"]
    assert (fee["ledger_amount"], fee["statement_amount"], fee["difference"]) == ("100.00 CNY", "99.40 CNY",
                                                                                  "-0.60 CNY")
    (fx,) = [r for r in rows if r["label"] == "fx"]  # each side in its own currency; no difference without a rate
    assert (fx["ledger_amount"], fx["statement_amount"], fx["difference"]) == ("42.00 USD", "300.00 CNY", "—")
    summary = json.loads(files["report.json"])["summary"]
    assert summary["statement_lines"] == 12 and summary["matched_lines"] == 6
    assert summary["differences_by_label"]["refund_not_synced"] == 2


def test_the_page_escapes_what_the_statement_says():
    from orderhub.reconciliation.statements import LineKind, StatementLine

    odd = StatementLine("wechatpay", 1, LineKind.PAYMENT, 100, "CNY", "2026-12-06T04:00:00+00:00",
                        order_ref="<script>alert(1)</script>")
    page = reports(inputs(lines=[odd]), match(LEDGER[:1], [odd]))["report.html"].decode()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
