"""The matcher against an answer key with every outcome and label planted, and its invariants under any order.

The expected outcome of each planted row is written beside it (what the test made), never read from the
matcher's own output.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from orderhub.reconciliation.matcher import Label, LedgerRow, Outcome, match
from orderhub.reconciliation.statements import LineKind, StatementLine

DAY = "2026-12-06T"  # business day 2026-12-06 in Shanghai is 2026-12-05T16:00Z .. 2026-12-06T16:00Z


def row(entry: str, amount: int, at: str = "04:00:00", kind: str = "payment", order: str = "", ref: str = "",
        currency: str = "CNY", merchant_ref: str = "") -> LedgerRow:
    return LedgerRow(entry_id=entry, kind=kind, reference=ref or entry.rsplit(":", 1)[-1], order_ref=order,
                     amount=amount, currency=currency, occurred_at=f"{DAY}{at}.000+00:00",
                     merchant_reference=merchant_ref)


def line(n: int, amount: int, kind: LineKind = LineKind.PAYMENT, txn: str = "", order: str = "", refund: str = "",
         at: str = "04:00:05", fee: int | None = None, remark: str = "", currency: str = "CNY") -> StatementLine:
    return StatementLine(source="wechatpay", line_no=n, kind=kind, amount=amount, currency=currency,
                         occurred_at=f"{DAY}{at}+00:00", transaction_id=txn, order_ref=order, refund_id=refund,
                         fee=fee, remark=remark)


# (ledger rows, statement lines, the outcome planted for each entry id and line number, the label per difference)
LEDGER = [
    row("wechatpay:payment:T1", 25800, order="M1"),                      # 1: matched by transaction id
    row("wechatpay:payment:T2", 10000, order="M2"),                      # 2: amount differs by the fee
    row("wechatpay:payment:T3", 9900, order="M3"),                       # 3: discount not booked
    row("wechatpay:payment:T4", 5000, order="M4"),                       # 4: duplicate line on the statement
    row("wechatpay:payment:T5", 30000, order="M5"),                      # 5: one booking, two lines (split)
    row("alipay:payment:A6", 1000, order="M6"), row("alipay:payment:A7", 2000, order="M6"),  # 6: two bookings, one line
    row("bank:payment:BK8", 136000, order="M8"),                         # 7: bank line, amount + time + remark
    row("wechatpay:payment:T9", 700, order="M9", at="15:55:00"),         # 8: 23:55 Shanghai, on tomorrow's bill
    row("wechatpay:refund:R10", 500, kind="refund", order="M10"),        # 9: refund not on the statement
    row("wechatpay:payment:T11", 4200, order="M11", currency="USD"),     # 10: FX
]
STATEMENT = [
    line(1, 25800, txn="T1", order="M1"),
    line(2, 9940, txn="T2", order="M2", fee=60),
    line(3, 9000, txn="T3", order="M3"),
    line(4, 5000, txn="T4", order="M4"), line(5, 5000, txn="T4", order="M4"),
    line(6, 20000, order="M5"), line(7, 10000, order="M5"),
    line(8, 3000, order="M6"),
    line(9, 136000, at="04:10:00", remark="货款 M8 张"),
    line(11, 8800, txn="T99", order="M99"),                             # 11: callback delayed (hub lacks it)
    line(12, 300, kind=LineKind.REFUND, refund="R12", order="M1"),      # 12: refund the hub has not booked
    line(13, 30000, txn="T11", order="M11", currency="CNY"),
]
ENTRY_OUTCOME = {
    "wechatpay:payment:T1": Outcome.MATCHED, "wechatpay:payment:T2": Outcome.AMOUNT_DIFFERS,
    "wechatpay:payment:T3": Outcome.AMOUNT_DIFFERS, "wechatpay:payment:T4": Outcome.MATCHED,
    "wechatpay:payment:T5": Outcome.MATCHED, "alipay:payment:A6": Outcome.MATCHED, "alipay:payment:A7": Outcome.MATCHED,
    "bank:payment:BK8": Outcome.MATCHED, "wechatpay:payment:T9": Outcome.MISSING_IN_STATEMENT,
    "wechatpay:refund:R10": Outcome.MISSING_IN_STATEMENT, "wechatpay:payment:T11": Outcome.AMOUNT_DIFFERS,
}
LINE_OUTCOME = {1: Outcome.MATCHED, 2: Outcome.AMOUNT_DIFFERS, 3: Outcome.AMOUNT_DIFFERS, 4: Outcome.MATCHED,
                5: Outcome.DUPLICATE, 6: Outcome.MATCHED, 7: Outcome.MATCHED, 8: Outcome.MATCHED, 9: Outcome.MATCHED,
                11: Outcome.MISSING_IN_LEDGER, 12: Outcome.MISSING_IN_LEDGER, 13: Outcome.AMOUNT_DIFFERS}
LABELS = Counter({Label.FEE: 1, Label.DISCOUNT_NOT_BOOKED: 1, Label.DUPLICATE_NOTIFICATION: 1,
                  Label.CROSS_DAY_TIMING: 1, Label.REFUND_NOT_SYNCED: 2, Label.FX: 1, Label.CALLBACK_DELAYED: 1})


def test_every_planted_difference_is_found_with_its_label():
    result = match(LEDGER, STATEMENT)
    assert result.outcome_of_entry() == ENTRY_OUTCOME
    assert result.outcome_of_line() == LINE_OUTCOME
    assert Counter(d.label for d in result.differences) == LABELS
    by = {m.ledger: m.by for m in result.matches}
    assert by[("wechatpay:payment:T1",)] == "transaction_id"
    assert by[("wechatpay:payment:T5",)] == "order_and_type"  # one booking, split over two lines
    assert by[("alipay:payment:A6", "alipay:payment:A7")] == "order_and_type"  # two bookings, one line
    assert by[("bank:payment:BK8",)] == "amount_time_remark"


def test_a_difference_says_what_the_books_must_move():
    (fee,) = [d for d in match(LEDGER, STATEMENT).differences if d.label is Label.FEE]
    assert (fee.ledger_amount, fee.statement_amount, fee.amount) == (10000, 9940, -60)


def test_a_bank_line_with_two_candidates_is_never_guessed():
    twins = [row("bank:payment:X1", 500, order="MX"), row("bank:payment:X2", 500, order="MX2")]
    result = match(twins, [line(1, 500, remark="MX MX2")])
    assert not result.matches and {d.outcome for d in result.differences} == {Outcome.MISSING_IN_LEDGER,
                                                                               Outcome.MISSING_IN_STATEMENT}


@settings(max_examples=150, deadline=None)
@given(st.permutations(LEDGER), st.permutations(STATEMENT))
def test_order_never_changes_the_result_and_every_line_ends_in_one_outcome(ledger, statement):
    result = match(ledger, statement)
    assert result.outcome_of_entry() == ENTRY_OUTCOME and result.outcome_of_line() == LINE_OUTCOME
    lines_seen = [n for m in result.matches for n in m.statement] + [n for d in result.differences for n in d.statement]
    entries_seen = [e for m in result.matches for e in m.ledger] + [e for d in result.differences for e in d.ledger]
    assert sorted(lines_seen) == sorted(li.line_no for li in STATEMENT)  # each line exactly once
    assert sorted(entries_seen) == sorted(r.entry_id for r in LEDGER)  # each movement exactly once
    # Matched plus differences add up to both sides' totals
    matched = sum(m.amount for m in result.matches)
    assert matched + sum(d.ledger_amount for d in result.differences) == sum(r.amount for r in LEDGER)
    settled_in_matches = sum(li.amount for m in result.matches for li in STATEMENT if li.line_no in m.statement)
    assert settled_in_matches + sum(d.statement_amount for d in result.differences) == \
        sum(li.amount for li in STATEMENT)
