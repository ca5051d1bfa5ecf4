"""The ledger's side: one row per movement of the source, reversed ones left out, the day's only."""

from __future__ import annotations

from unit.exception_builders import movement

from orderhub.models.order import MoneyKind, MoneyState
from orderhub.payments.ledger import LedgerRecord
from orderhub.reconciliation.ledger_side import rows_for_source


def record(line, order="oh_1", number="M1") -> LedgerRecord:
    return LedgerRecord(line=line, order_id=order, channel="mall", channel_order_id=number, source=line.provider,
                        source_event_id="e", booked_at="2026-11-18T02:00:00.000+00:00")


def test_each_movement_once_at_its_state_reversed_left_out_other_providers_too():
    abnormal = movement("R1", 500, 30, kind=MoneyKind.REFUND, state=MoneyState.PENDING, payment_reference="T1")
    records = [record(movement("T1", 25800, 5)), record(abnormal),
               record(abnormal.model_copy(update={"state": MoneyState.CONFIRMED, "occurred_at": abnormal.occurred_at
                                                  .replace("02:30", "02:45")})),
               record(movement("R2", 100, 40, kind=MoneyKind.REFUND, state=MoneyState.REVERSED)),
               record(movement("A9", 100, 6, provider="alipay"), order="oh_2", number="M2")]
    rows = rows_for_source(records, "wechatpay")
    assert [(r.entry_id, r.amount, r.order_ref, r.pending) for r in rows] == [
        ("wechatpay:payment:T1", 25800, "M1", False), ("wechatpay:refund:R1", 500, "M1", False)]
    assert [r.entry_id for r in rows_for_source(records, "alipay")] == ["alipay:payment:A9"]
    assert rows_for_source(records, "wechatpay", business_date="2026-11-19") == []
