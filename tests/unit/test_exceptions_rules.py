"""EXC-1: each detection rule on crafted orders (holds, does not, clears, and why), and the timers
domain events arm, whatever order and however often they arrive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from unit.exception_builders import ORDER_ID, at, changes, iso, movement, order, rules

from orderhub.exceptions.model import Rule, Timer, parse_exception_id
from orderhub.exceptions.rules import Clear, Finding, check, facts_of_order, timers_for_change
from orderhub.exceptions.watchdog import arm, place
from orderhub.lifecycle.statuses import LogisticsStatus, OrderStatus
from orderhub.models.order import MoneyKind, MoneyState
from orderhub.store.sla_timers import MemoryTimerStore

RULES = rules(known_skus=["TEA-LJ-250", "TEA-BLC-100"])


def verdict(rule: Rule, **facts) -> Finding | Clear:
    return check(rule, facts_of_order(order(**facts)), RULES)


# ------------------------------------------------------------------------------------- payment


def test_a_paid_order_without_a_confirmed_payment_in_the_ledger_is_due_30_minutes_after_payment():
    found = verdict(Rule.PAYMENT_UNCONFIRMED, paid=5)
    assert isinstance(found, Finding)
    assert (found.since, found.due_at) == (iso(5), iso(35))
    assert found.detail == {"paid_at": iso(5)}


def test_a_confirmed_payment_in_the_ledger_clears_the_payment_rule():
    assert verdict(Rule.PAYMENT_UNCONFIRMED, paid=5, txn="4200001") == Clear("payment confirmed in the ledger")
    assert verdict(Rule.PAYMENT_UNCONFIRMED, paid=None) == Clear("not paid")


def test_a_pending_payment_does_not_clear_the_payment_rule():
    pending = movement("BANK-1", 100, 6, state=MoneyState.PENDING, provider="bank")
    assert isinstance(verdict(Rule.PAYMENT_UNCONFIRMED, paid=5, money=(pending,)), Finding)


def test_money_refunded_in_full_clears_the_payment_rule():
    assert verdict(Rule.PAYMENT_UNCONFIRMED, paid=5, refunded=True, cancelled=20) == Clear("payment refunded in full")


# ------------------------------------------------------------------------------------- logistics


def test_paid_and_not_physically_shipped_is_due_two_hours_after_payment_even_when_shipping_was_requested():
    found = verdict(Rule.NOT_SHIPPED, paid=5, ship_requested=30, txn="t")
    assert isinstance(found, Finding) and found.due_at == iso(125)
    assert found.detail == {"paid_at": iso(5), "fulfillment_status": "SHIP_REQUESTED", "ship_requested_at": iso(30)}


def test_the_outbound_the_carrier_or_a_cancellation_clears_not_shipped_and_say_so():
    assert verdict(Rule.NOT_SHIPPED, paid=5, outbound=90) == Clear(f"left the warehouse at {iso(90)}")
    assert verdict(Rule.NOT_SHIPPED, paid=5, picked_up=95) == Clear(f"collected by the carrier at {iso(95)}")
    assert verdict(Rule.NOT_SHIPPED, paid=5, delivered=300) == Clear(f"delivered at {iso(300)}")
    assert verdict(Rule.NOT_SHIPPED, paid=5, cancelled=40) == Clear("order cancelled")


def test_a_held_order_is_not_late_to_ship_its_hold_is_the_exception():
    assert verdict(Rule.NOT_SHIPPED, paid=5, hold="risk control") == Clear("order on hold: risk control")
    assert isinstance(verdict(Rule.RISK_HOLD, paid=5, hold="risk control"), Finding)


def test_a_ship_request_without_outbound_is_due_after_the_configured_time_st4():
    found = verdict(Rule.NO_OUTBOUND, paid=5, ship_requested=30)
    assert isinstance(found, Finding) and found.due_at == iso(30 + RULES.no_outbound_after_min)
    assert verdict(Rule.NO_OUTBOUND, paid=5) == Clear("no ship request")
    assert verdict(Rule.NO_OUTBOUND, paid=5, ship_requested=30, outbound=400) == \
        Clear(f"left the warehouse at {iso(400)}")


def test_goods_that_left_after_a_cancellation_are_an_exception_at_once_until_the_parcel_comes_back():
    found = verdict(Rule.SHIPPED_AFTER_CANCEL, paid=5, cancelled=50, outbound=60)
    assert isinstance(found, Finding)
    assert (found.since, found.due_at) == (iso(60), iso(60))
    assert found.detail == {"cancelled_at": iso(50), "went_out_at": iso(60)}
    assert order(paid=5, cancelled=50, outbound=60).status is OrderStatus.CANCELLED
    assert verdict(Rule.SHIPPED_AFTER_CANCEL, paid=5, cancelled=50) == Clear("nothing left the warehouse")
    assert verdict(Rule.SHIPPED_AFTER_CANCEL, paid=5, cancelled=50, outbound=60,
                   logistics=LogisticsStatus.RETURNING) == Clear("parcel coming back: returning")


# ------------------------------------------------------------------------------------- product, risk


def test_an_unknown_sku_is_a_product_exception_named_by_the_unknown_skus_in_any_line_order():
    a = verdict(Rule.UNKNOWN_SKU, skus=("TEA-LJ-250", "XX-9", "AA-1"))
    b = verdict(Rule.UNKNOWN_SKU, skus=("AA-1", "XX-9"))
    assert isinstance(a, Finding) and isinstance(b, Finding)
    assert a.detail == {"unknown_skus": "AA-1, XX-9"} and a.episode == b.episode
    assert verdict(Rule.UNKNOWN_SKU, skus=("TEA-LJ-250",)) == Clear("every SKU is in the catalogue")


def test_without_a_catalogue_the_product_rule_is_off():
    off = check(Rule.UNKNOWN_SKU, facts_of_order(order(skus=("XX-9",))), rules(known_skus=[]))
    assert off == Clear("no catalogue configured")


def test_a_channel_hold_is_a_risk_exception_but_a_presale_waiting_for_its_balance_is_not():
    found = verdict(Rule.RISK_HOLD, paid=5, hold="under platform risk review (审核中)", hold_at=7)
    assert isinstance(found, Finding) and found.due_at == iso(7)
    presale = order(deposit=5)
    assert presale.status is OrderStatus.ON_HOLD
    assert check(Rule.RISK_HOLD, facts_of_order(presale), RULES) == \
        Clear("presale: waiting for the balance, a normal hold")
    assert verdict(Rule.RISK_HOLD, paid=5) == Clear("hold released")


def test_exception_ids_are_url_safe_and_parse_back():
    found = verdict(Rule.NOT_SHIPPED, paid=5)
    assert isinstance(found, Finding)
    key = f"{found.rule.value}.{found.episode}"
    assert key == "not_shipped.20261118T020500000Z"
    assert parse_exception_id(f"{ORDER_ID}~{key}") == (ORDER_ID, key)
    for bad in ("", ORDER_ID, f"{ORDER_ID}~", f"{ORDER_ID}~nope", f"a/b~{key}", f"{ORDER_ID}~{key}/x"):
        assert parse_exception_id(bad) is None


# ------------------------------------------------------------------------------------- timers


def life() -> list:
    """One order's domain events: created, paid (no reference), ship requested, held, released, reference,
    then out of the warehouse."""
    return changes(
        order(now=0, version=1),
        order(now=5, version=2, paid=5),
        order(now=30, version=3, paid=5, ship_requested=30),
        order(now=40, version=4, paid=5, ship_requested=30, hold="locked by JD", hold_at=40),
        order(now=50, version=5, paid=5, ship_requested=30, hold="", hold_at=50),
        order(now=60, version=6, paid=5, ship_requested=30, txn="4200009"),
        order(now=300, version=7, paid=5, ship_requested=30, txn="4200009", outbound=300),
    )


def test_each_order_change_arms_the_timers_of_the_rules_that_hold_for_it():
    events = life()
    armed = [sorted((t.rule.value, t.due_at) for t in timers_for_change(c, RULES)) for c in events]
    paid_timers = [("not_shipped", iso(125)), ("payment_unconfirmed", iso(35))]
    assert armed[0] == armed[1] == []  # created: nothing to watch
    assert armed[2] == paid_timers  # paid: payment reference and shipping
    assert armed[3] == sorted([*paid_timers, ("no_outbound", iso(270))])  # ship requested
    assert armed[4] == [("payment_unconfirmed", iso(35)), ("risk_hold", iso(40))]  # held: shipping not late
    assert armed[-2] == [("no_outbound", iso(270)), ("not_shipped", iso(125))]  # reference arrived
    assert armed[-1] == []  # out of the warehouse: nothing left to watch


def armed_by(events) -> set[Timer]:
    store = MemoryTimerStore()
    for change in events:
        arm(change, RULES, store, at(0))
    return store.all_timers()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_arrival_order_with_duplicates_arms_the_same_timers(data):
    events = life()
    shuffled = data.draw(st.permutations(events))
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=8))
    delivered = data.draw(st.permutations(shuffled + duplicates))
    assert armed_by(delivered) == armed_by(events)
    assert armed_by(delivered) == {t for c in events for t in timers_for_change(c, RULES)}


def test_a_timer_already_due_goes_into_the_slot_the_watchdog_reads_next():
    (late, soon) = Timer(ORDER_ID, Rule.RISK_HOLD, iso(3)), Timer(ORDER_ID, Rule.NOT_SHIPPED, iso(127))
    floor = at(60)
    assert place([late, soon], floor) == [(at(60), late), (at(125), soon)]


# ------------------------------------------------------------------------------------- money (the ledger)

def test_a_second_confirmed_payment_is_paid_twice_with_both_transactions_and_the_refund_to_make():
    second = movement("2026120722001", 100, 7, provider="alipay")
    found = verdict(Rule.PAID_TWICE, paid=5, txn="4200001", money=(second,))
    assert isinstance(found, Finding) and (found.since, found.due_at) == (iso(7), iso(7))
    assert found.detail == {"transactions": "wechatpay 4200001, alipay 2026120722001", "paid": "2.00 CNY",
                            "payable": "1.00 CNY", "suggested_refund": "1.00 CNY to alipay 2026120722001"}


def test_paid_twice_clears_once_the_surplus_is_refunded_and_never_holds_for_one_payment_or_a_split_payment():
    refund = movement("R1", 100, 30, kind=MoneyKind.REFUND, provider="alipay", payment_reference="2026120722001")
    second = movement("2026120722001", 100, 7, provider="alipay")
    assert verdict(Rule.PAID_TWICE, paid=5, txn="4200001", money=(second, refund)) == \
        Clear("the surplus payment was refunded")
    assert verdict(Rule.PAID_TWICE, paid=5, txn="4200001") == Clear("one payment")
    halves = (movement("A", 50, 5), movement("B", 50, 6))
    assert verdict(Rule.PAID_TWICE, paid=5, money=halves) == Clear("the payments add up to the order's amount")


def test_a_payment_confirmed_after_the_cancellation_is_paid_after_close_until_refunded():
    late = movement("4200009", 100, 40)
    found = verdict(Rule.PAID_AFTER_CLOSE, cancelled=30, money=(late,))
    assert isinstance(found, Finding) and found.since == iso(40)
    assert found.detail["suggested_refund"] == "1.00 CNY to wechatpay 4200009"
    assert verdict(Rule.PAID_AFTER_CLOSE, cancelled=50, money=(late,)) == Clear("no payment after the cancellation")
    refund = movement("R9", 100, 60, kind=MoneyKind.REFUND, payment_reference="4200009")
    assert verdict(Rule.PAID_AFTER_CLOSE, cancelled=30, money=(late, refund)) == Clear("the late payment was refunded")


def test_a_provider_amount_that_is_not_the_payable_is_a_mismatch_but_a_platforms_own_payment_is_not_checked():
    found = verdict(Rule.AMOUNT_MISMATCH, paid=5, money=(movement("4200002", 99, 5),))
    assert isinstance(found, Finding)
    assert found.detail == {"paid": "0.99 CNY", "payable": "1.00 CNY", "transactions": "wechatpay 4200002"}
    assert verdict(Rule.AMOUNT_MISMATCH, paid=5, txn="4200001") == Clear("the payments match the order's amount")
    own = movement("MALL-1", 99, 5, provider="mall")
    assert verdict(Rule.AMOUNT_MISMATCH, paid=5, money=(own,)) == Clear("no provider payment")
    usd = movement("4200003", 100, 5, currency="USD")
    assert isinstance(verdict(Rule.AMOUNT_MISMATCH, paid=5, money=(usd,)), Finding)


def test_a_refund_beyond_the_payments_waits_for_a_late_payment_callback_before_it_is_an_exception():
    refund = movement("R1", 100, 10, kind=MoneyKind.REFUND)
    found = verdict(Rule.REFUND_WITHOUT_PAYMENT, money=(refund,))
    assert isinstance(found, Finding) and (found.since, found.due_at) == (iso(10), iso(40))
    assert verdict(Rule.REFUND_WITHOUT_PAYMENT, paid=5, txn="4200001", money=(refund,)) == \
        Clear("the refunds are covered by payments")


def test_a_reversed_or_pending_movement_is_not_money_for_any_rule():
    reversed_payment = movement("4200002", 100, 7, state=MoneyState.REVERSED)
    pending = movement("BANK-1", 100, 8, state=MoneyState.PENDING, provider="bank")
    for rule in (Rule.PAID_TWICE, Rule.AMOUNT_MISMATCH, Rule.PAID_AFTER_CLOSE):
        assert isinstance(verdict(rule, paid=5, cancelled=6, txn="4200001", money=(reversed_payment, pending)), Clear)


def test_money_exceptions_belong_to_finance():
    for rule in (Rule.PAID_TWICE, Rule.PAID_AFTER_CLOSE, Rule.AMOUNT_MISMATCH, Rule.REFUND_WITHOUT_PAYMENT):
        assert RULES.route(rule).owner == "finance"


def test_every_rule_has_words_for_the_people_it_alerts_and_a_type():
    from orderhub.exceptions.model import RULE_TYPE
    from orderhub.exceptions.watchdog import rule_text

    for rule in Rule:
        assert rule_text(rule, RULES) and rule in RULE_TYPE
