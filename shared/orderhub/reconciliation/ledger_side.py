"""The ledger's side of a reconciliation: the movements of one source, as the matcher reads them.

A day's records (`Ledger.records_of_day`, plus the other records of the orders they name) are grouped by
order and read as movements (`payments.ledger.movements`: each movement once, at its highest state), then
kept when their provider is the statement's source. A reversed movement is not money: it is left out; a
pending one (a transfer finance recorded and nobody confirmed) is matched like the others and flagged.
"""

from __future__ import annotations

from collections.abc import Iterable

from orderhub.models.order import MoneyState
from orderhub.payments.ledger import LedgerRecord, movements
from orderhub.reconciliation.matcher import LedgerRow


def rows_for_source(records: Iterable[LedgerRecord], source: str, business_date: str | None = None) -> list[LedgerRow]:
    """The movements of provider `source` (`wechatpay`, `alipay`, `bank`) among `records`; with
    `business_date`, only those whose first report falls on that business day."""
    by_order: dict[str, dict[str, LedgerRecord]] = {}
    for record in records:
        by_order.setdefault(record.order_id, {})[record.record_id] = record
    rows = []
    for order_id in sorted(by_order):
        kept = by_order[order_id]
        order_ref = next(iter(kept.values())).channel_order_id
        for m in movements({rid: r.line for rid, r in kept.items()}):
            if m.provider != source or m.state is MoneyState.REVERSED:
                continue
            if business_date is not None and m.business_date != business_date:
                continue
            merchant = m.merchant_reference if m.kind.value == "refund" else ""
            rows.append(LedgerRow(entry_id=m.entry_id, kind=m.kind.value, reference=m.reference, order_ref=order_ref,
                                  amount=m.amount, currency=m.currency, occurred_at=m.occurred_at,
                                  payment_reference=m.payment_reference, merchant_reference=merchant,
                                  pending=m.state is MoneyState.PENDING))
    return rows
