"""The ledger's journal for the ERP (PAY-2): balanced, a refund and a reversal on the other side, exact amounts."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhub.clock import utc_iso
from orderhub.models.order import LedgerLine, MethodClass, MoneyKind, MoneyState, Order
from orderhub.payments.journal import (
    ACCOUNTS_ENV,
    COUNTER_ACCOUNT,
    DEFAULT_ACCOUNTS,
    JournalLine,
    accounts_from,
    accounts_from_env,
    day_records,
    day_totals,
    day_view,
    journal_csv,
    journal_lines,
    major,
    order_view,
    parse_day,
)
from orderhub.payments.ledger import InMemoryLedger, LedgerRecord, business_date, money

DAY1 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, business day 2026-12-01
DAY2 = DAY1 + timedelta(days=1)


def record(reference: str, state: MoneyState, at: datetime, amount: int = 42000, *, provider: str = "wechatpay",
           kind: MoneyKind = MoneyKind.PAYMENT, method: MethodClass = MethodClass.ONLINE, currency: str = "CNY",
           order_id: str = "oh_a", cumulative: bool = False, payment_reference: str = "") -> LedgerRecord:
    line = LedgerLine(provider=provider, kind=kind, reference=reference, state=state, amount=amount,
                      currency=currency, method=method, occurred_at=utc_iso(at), business_date=business_date(at),
                      cumulative=cumulative, payment_reference=payment_reference)
    return LedgerRecord(line=line, order_id=order_id, channel="mall", channel_order_id=f"M-{order_id}",
                        source=provider, source_event_id="e1", booked_at=utc_iso(at))


def pairs(lines: list[JournalLine]) -> list[tuple[str, str, str, int, str]]:
    """(date, debit account, credit account, amount, summary) per voucher."""
    by_voucher: dict[str, list[JournalLine]] = {}
    for line in lines:
        by_voucher.setdefault(line.voucher, []).append(line)
    out = []
    for group in by_voucher.values():
        (debit,) = [li for li in group if li.debit]
        (credit,) = [li for li in group if li.credit]
        assert debit.debit == credit.credit and debit.summary == credit.summary
        out.append((debit.date, debit.account, credit.account, debit.debit, debit.summary))
    return out


def test_a_confirmed_payment_debits_where_the_money_is_and_credits_advance_receipts():
    lines = journal_lines([record("4200001234202612010000000001", MoneyState.CONFIRMED, DAY1, 42000)])
    assert pairs(lines) == [("2026-12-01", "1012.03 其他货币资金-第三方支付", COUNTER_ACCOUNT, 42000,
                             "微信支付收款 payment wechatpay 4200001234202612010000000001")]
    first = lines[0]
    assert (first.order_id, first.channel_order_id, first.transaction_id, first.currency) == (
        "oh_a", "M-oh_a", "4200001234202612010000000001", "CNY")


@pytest.mark.parametrize(("method", "account"), [
    (MethodClass.ONLINE, "1012.03 其他货币资金-第三方支付"), (MethodClass.BANK_TRANSFER, "1002 银行存款"),
    (MethodClass.CREDIT, "1122 应收账款"), (MethodClass.COLLECTED_ON_BEHALF, "1122.01 应收账款-平台代收"),
])
def test_the_money_side_is_chosen_by_method_class(method, account):
    ((_, debit, credit, _, _),) = pairs(journal_lines([record("R1", MoneyState.CONFIRMED, DAY1, method=method)]))
    assert (debit, credit) == (account, COUNTER_ACCOUNT)


def test_a_refund_reverses_the_sides():
    refund = record("50300001", MoneyState.CONFIRMED, DAY1, 5000, kind=MoneyKind.REFUND, payment_reference="4200")
    assert pairs(journal_lines([refund])) == [("2026-12-01", COUNTER_ACCOUNT, "1012.03 其他货币资金-第三方支付", 5000,
                                               "微信支付退款 refund wechatpay 50300001")]


def test_a_reversed_movement_keeps_its_lines_and_gets_a_reversing_pair_on_the_day_of_the_reversal():
    confirmed = record("CMB42", MoneyState.CONFIRMED, DAY1, 129900, provider="bank", method=MethodClass.BANK_TRANSFER)
    reversed_ = record("CMB42", MoneyState.REVERSED, DAY2, 129900, provider="bank", method=MethodClass.BANK_TRANSFER)
    before = journal_lines([confirmed], "2026-12-01")
    # The first day's journal is the same once the reversal is booked: never an edit.
    assert journal_lines([confirmed, reversed_], "2026-12-01") == before
    assert pairs(before) == [
        ("2026-12-01", "1002 银行存款", COUNTER_ACCOUNT, 129900, "银行转账收款 payment bank CMB42")]
    assert pairs(journal_lines([confirmed, reversed_], "2026-12-02")) == [
        ("2026-12-02", COUNTER_ACCOUNT, "1002 银行存款", 129900, "冲销 银行转账收款 reversal of payment bank CMB42")]


def test_pending_records_book_nothing_and_a_movement_reversed_before_confirmation_never_reached_the_books():
    pending = record("CMB43", MoneyState.PENDING, DAY1, provider="bank", method=MethodClass.BANK_TRANSFER)
    reversed_ = record("CMB43", MoneyState.REVERSED, DAY2, provider="bank", method=MethodClass.BANK_TRANSFER)
    assert journal_lines([pending]) == [] and journal_lines([pending, reversed_]) == []
    # ... but the day's totals show them
    assert [(t.state, t.count, t.amount) for t in day_totals([pending, reversed_], "2026-12-01")] == [
        (MoneyState.PENDING, 1, 42000)]
    assert [(t.state, t.count) for t in day_totals([pending, reversed_], "2026-12-02")] == [(MoneyState.REVERSED, 1)]


def test_a_movement_reported_confirmed_twice_is_booked_once_on_its_first_confirmation():
    # A platform reporting one payment in two events, at two times: two records, one movement.
    first = record("TB-1", MoneyState.CONFIRMED, DAY1, provider="taobao", method=MethodClass.COLLECTED_ON_BEHALF)
    again = record("TB-1", MoneyState.CONFIRMED, DAY2, provider="taobao", method=MethodClass.COLLECTED_ON_BEHALF)
    assert [p[0] for p in pairs(journal_lines([again, first]))] == ["2026-12-01"]
    assert journal_lines([first, again], "2026-12-02") == []
    assert day_totals([first, again], "2026-12-02") == []


def test_cumulative_refunds_book_each_refunds_own_step():
    common = {"provider": "alipay", "kind": MoneyKind.REFUND, "cumulative": True, "payment_reference": "2026T1"}
    refunds = [record("2026T1#R1", MoneyState.CONFIRMED, DAY1, 3000, **common),
               record("2026T1#R2", MoneyState.CONFIRMED, DAY2, 5000, **common)]
    assert [p[3] for p in pairs(journal_lines(refunds))] == [3000, 2000]


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (1, "CNY", "0.01"), (10, "CNY", "0.10"), (129900, "CNY", "1299.00"), (10**12, "CNY", "10000000000.00"),
    (1234, "JPY", "1234"), (1234, "KWD", "1.234"), (-5, "CNY", "-0.05"), (0, "CNY", "0.00"),
])
def test_amounts_are_written_exactly_in_the_currencys_minor_unit(amount, currency, text):
    assert major(amount, currency) == text


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_the_csv_is_utf8_with_a_bom_and_exact_yuan_strings():
    data = journal_csv(journal_lines([record("4200", MoneyState.CONFIRMED, DAY1, 129901),
                                      record("5030", MoneyState.CONFIRMED, DAY1, 1, kind=MoneyKind.REFUND)]))
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    rows = read_csv(data)
    assert list(rows[0]) == ["date", "voucher", "summary", "account", "debit", "credit", "currency", "order_id",
                             "channel_order_id", "transaction_id"]
    assert [(r["account"], r["debit"], r["credit"]) for r in rows] == [
        ("1012.03 其他货币资金-第三方支付", "1299.01", ""), (COUNTER_ACCOUNT, "", "1299.01"),
        (COUNTER_ACCOUNT, "0.01", ""), ("1012.03 其他货币资金-第三方支付", "", "0.01")]
    assert rows[0]["summary"] == "微信支付收款 payment wechatpay 4200"


def test_a_reference_that_looks_like_a_formula_is_written_as_text():
    rows = read_csv(journal_csv(journal_lines([record("=HYPERLINK(1)", MoneyState.CONFIRMED, DAY1),
                                               record("-5", MoneyState.CONFIRMED, DAY1)])))
    assert {r["transaction_id"] for r in rows} == {"'=HYPERLINK(1)", "'-5"}


def test_accounts_are_configuration():
    accounts = accounts_from({"bank_transfer": "1002.01 银行存款-工行", "counter": "2205 合同负债"})
    ((_, debit, credit, _, _),) = pairs(journal_lines([record("B", MoneyState.CONFIRMED, DAY1, provider="bank",
                                                             method=MethodClass.BANK_TRANSFER)], accounts=accounts))
    assert (debit, credit) == ("1002.01 银行存款-工行", "2205 合同负债")
    assert accounts.of(MethodClass.ONLINE) == DEFAULT_ACCOUNTS.of(MethodClass.ONLINE)
    for bad in ({"bank": "1002"}, {"counter": " "}, {"online": 1012}):
        with pytest.raises(ValueError):
            accounts_from(bad)


def test_accounts_are_read_from_the_environment(monkeypatch):
    monkeypatch.delenv(ACCOUNTS_ENV, raising=False)
    assert accounts_from_env() == DEFAULT_ACCOUNTS
    monkeypatch.setenv(ACCOUNTS_ENV, '{"counter": "2205 合同负债"}')
    assert accounts_from_env().counter == "2205 合同负债"


@pytest.mark.parametrize("text", ["2026-12-1", "2026-13-01", "2026-02-30", "20261201", "today", ""])
def test_a_day_is_a_real_date(text):
    with pytest.raises(ValueError):
        parse_day(text)
    assert parse_day(" 2026-12-01 ") == "2026-12-01"


# Movements, each as the states it reached (in order), at hours after DAY1.
LIFECYCLES = [(MoneyState.PENDING,), (MoneyState.CONFIRMED,), (MoneyState.PENDING, MoneyState.CONFIRMED),
              (MoneyState.PENDING, MoneyState.REVERSED), (MoneyState.CONFIRMED, MoneyState.REVERSED),
              (MoneyState.PENDING, MoneyState.CONFIRMED, MoneyState.REVERSED)]
movement_specs = st.tuples(
    st.sampled_from(["oh_a", "oh_b", "oh_c"]), st.sampled_from(["wechatpay", "bank", "taobao", "credit"]),
    st.sampled_from(list(MoneyKind)), st.integers(1, 10**12), st.sampled_from(list(MethodClass)),
    st.sampled_from(["CNY", "USD", "JPY"]), st.sampled_from(LIFECYCLES),
    st.lists(st.integers(0, 24 * 5), min_size=3, max_size=3, unique=True).map(sorted),
    st.booleans())  # whether the first record of each state is reported again, later


def records_of(specs: list) -> list[LedgerRecord]:
    out = []
    for n, (order, provider, kind, amount, method, currency, states, hours, twice) in enumerate(specs):
        for state, hour in zip(states, hours, strict=False):
            at = DAY1 + timedelta(hours=hour)
            out.append(record(f"R{n}", state, at, amount, provider=provider, kind=kind, method=method,
                              currency=currency, order_id=order))
            if twice:
                out.append(record(f"R{n}", state, at + timedelta(minutes=7), amount, provider=provider, kind=kind,
                                  method=method, currency=currency, order_id=order))
    return out


def balances(lines: Iterable[JournalLine]) -> Counter:
    totals: Counter = Counter()
    for line in lines:
        totals[(line.currency, "debit")] += line.debit
        totals[(line.currency, "credit")] += line.credit
    return totals


@given(specs=st.lists(movement_specs, max_size=12))
def test_debits_equal_credits_for_any_set_of_movements_on_every_day(specs):
    records = records_of(specs)
    lines = journal_lines(records)
    days = {r.line.business_date for r in records}
    for some in [lines, *(journal_lines(records, day) for day in days)]:
        totals = balances(some)
        for currency in {c for c, _ in totals}:
            assert totals[(currency, "debit")] == totals[(currency, "credit")]
        assert all((line.debit > 0) != (line.credit > 0) for line in some)
    # The days' journals are the whole journal, split: each movement is booked on one day only
    assert sorted(lines, key=repr) == sorted((li for day in days for li in journal_lines(records, day)), key=repr)


@given(specs=st.lists(movement_specs, max_size=12))
def test_the_journal_agrees_with_the_orders_money_to_the_fen(specs):
    records = records_of(specs)
    lines = journal_lines(records)
    for order in {r.order_id for r in records}:
        for currency in {r.line.currency for r in records if r.order_id == order}:
            mine = {r.record_id: r.line for r in records if r.order_id == order and r.line.currency == currency}
            books = money(mine)
            # What advance receipts hold for the order: confirmed payments less confirmed refunds
            held = sum(li.credit - li.debit for li in lines
                       if li.order_id == order and li.currency == currency and li.account == COUNTER_ACCOUNT)
            assert held == books.paid - books.refunded


@given(specs=st.lists(movement_specs, min_size=1, max_size=12), data=st.data())
def test_the_day_totals_count_each_movement_once_per_state(specs, data):
    records = records_of(specs)
    day = data.draw(st.sampled_from(sorted({r.line.business_date for r in records})))
    totals = day_totals(records, day)
    # Each (entry, state) counted once, on its first record, whatever duplicates the ledger holds
    firsts: dict[tuple[str, str, MoneyState], LedgerRecord] = {}
    for r in sorted(records, key=lambda r: (r.line.occurred_at, r.record_id)):
        firsts.setdefault((r.order_id, r.line.entry_id, r.line.state), r)
    assert sum(t.count for t in totals) == sum(1 for r in firsts.values() if r.line.business_date == day)
    assert sum(t.amount for t in totals) == sum(r.line.amount for r in firsts.values() if r.line.business_date == day)


class Ledger(InMemoryLedger):
    """The payments table's reading contract: an order's records by the ids the order lists."""

    def records_of_order(self, order_id, record_ids=None):  # type: ignore[override]
        wanted = set(record_ids or ())
        return [r for r in super().records_of_order(order_id) if r.record_id in wanted]


class Orders:
    def __init__(self, orders: dict[str, Order]) -> None:
        self.orders = orders

    def get_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)


def order_with(records: list[LedgerRecord], order_id: str = "oh_a") -> Order:
    return Order(order_id=order_id, channel="mall", channel_order_id=f"M-{order_id}", currency="CNY",
                 total_amount=42000, ledger={r.record_id: r.line for r in records if r.order_id == order_id})


def test_a_days_records_bring_the_history_of_their_orders():
    confirmed = record("CMB42", MoneyState.CONFIRMED, DAY1, provider="bank", method=MethodClass.BANK_TRANSFER)
    reversed_ = record("CMB42", MoneyState.REVERSED, DAY2, provider="bank", method=MethodClass.BANK_TRANSFER)
    other = record("4200", MoneyState.CONFIRMED, DAY1, order_id="oh_b")
    ledger = Ledger()
    ledger.book([confirmed, reversed_, other])
    orders = Orders({"oh_a": order_with([confirmed, reversed_]), "oh_b": order_with([other], "oh_b")})
    held = day_records(ledger, orders, "2026-12-02")
    # The reversal's day brings the confirmation it undoes (as its order lists it), not the other order
    assert [r.record_id for r in held] == sorted([confirmed.record_id, reversed_.record_id])
    assert [p[4][:2] for p in pairs(journal_lines(held, "2026-12-02"))] == ["冲销"]
    assert day_records(ledger, orders, "2026-12-03") == []


def test_the_day_view_gives_totals_and_the_confirmed_net_per_currency():
    records = [record("P1", MoneyState.CONFIRMED, DAY1, 42000),
               record("F1", MoneyState.CONFIRMED, DAY1, 2000, kind=MoneyKind.REFUND),
               record("B1", MoneyState.PENDING, DAY1, 9900, provider="bank", method=MethodClass.BANK_TRANSFER)]
    view = day_view("2026-12-01", records)
    assert [(t["method"], t["kind"], t["state"], t["count"], t["amount_text"]) for t in view["totals"]] == [
        ("online", "payment", "confirmed", 1, "420.00"), ("online", "refund", "confirmed", 1, "20.00"),
        ("bank_transfer", "payment", "pending", 1, "99.00")]
    assert view["confirmed_net"] == [{"currency": "CNY", "amount": 40000, "amount_text": "400.00"}]


def test_the_order_view_lists_movements_with_states_records_and_the_money():
    pending = record("CMB42", MoneyState.PENDING, DAY1, 30000, provider="bank", method=MethodClass.BANK_TRANSFER)
    confirmed = record("CMB42", MoneyState.CONFIRMED, DAY2, 30000, provider="bank", method=MethodClass.BANK_TRANSFER)
    online = record("4200", MoneyState.CONFIRMED, DAY1, 12000)
    waiting = record("CMB43", MoneyState.PENDING, DAY2, 500, provider="bank", method=MethodClass.BANK_TRANSFER)
    # The ledger holds a record the order does not list yet (its write still to come): shown and counted
    view = order_view(order_with([pending, confirmed, online]), [pending, confirmed, waiting])
    assert view["money"] == {"paid": 42000, "refunded": 0, "net": 42000, "pending_in": 500, "pending_out": 0,
                             "currencies": ["CNY"]}
    by_entry = {m["entry_id"]: m for m in view["movements"]}
    bank = by_entry["bank:payment:CMB42"]
    assert (bank["state"], [r["record_id"] for r in bank["records"]]) == (
        "confirmed", [pending.record_id, confirmed.record_id])
    assert bank["records"][0]["source"] == "bank" and bank["records"][0]["on_order"] is True
    assert "source" not in by_entry["wechatpay:payment:4200"]["records"][0]  # the ledger's record was not read
    assert by_entry["bank:payment:CMB43"]["records"][0]["on_order"] is False
