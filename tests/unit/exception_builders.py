"""Builders for the exception tests: orders with chosen facts, their domain events, the configured rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.config import load_config
from orderhub.bus.domain_events import OrderChange, events_for_change
from orderhub.clock import utc_iso
from orderhub.exceptions.model import ExceptionRules
from orderhub.lifecycle.machine import derive
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, LogisticsStatus
from orderhub.models.order import (
    AftersaleCase,
    LedgerLine,
    MethodClass,
    Milestones,
    MoneyKind,
    MoneyState,
    Order,
    OrderLine,
    Stamp,
)
from orderhub.payments.ledger import business_date

T0 = datetime(2026, 11, 18, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
ORDER_ID = "oh_testorder0001"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return utc_iso(at(minutes))


def rules(**overrides: Any) -> ExceptionRules:
    """The committed configuration's rules (config/local.toml), with overrides."""
    return ExceptionRules.model_validate({**load_config().exceptions.model_dump(), **overrides})


def order(*, now: float = 0, order_id: str = ORDER_ID, channel: str = "mall", version: int = 1,
          paid: float | None = None, deposit: float | None = None, ship_requested: float | None = None,
          outbound: float | None = None, picked_up: float | None = None, delivered: float | None = None,
          cancelled: float | None = None, txn: str = "", hold: str = "", hold_at: float | None = None,
          skus: tuple[str, ...] = ("TEA-LJ-250",), logistics: LogisticsStatus = LogisticsStatus.NONE,
          refunded: bool = False, money: tuple[LedgerLine, ...] = ()) -> Order:
    """An order as stored at minute `now` after T0, with the given facts (minutes after T0), statuses derived.
    `txn`: a payment provider confirmed the payment (of the order's total, at `paid`) under that id;
    `money`: further ledger records."""
    def when(minutes: float | None) -> str | None:
        return None if minutes is None else iso(minutes)

    total = 100 * len(skus)
    cases = {"RF1": AftersaleCase(state=AftersaleState.REFUNDED, type=AftersaleType.REFUND_ONLY, amount=total,
                                  stamp=Stamp(at=iso(now), event_id="rf"), opened_at=iso(now))} if refunded else {}
    base = Order(
        order_id=order_id, channel=channel, channel_order_id=f"{channel.upper()}-1", shop_id="shop-1",
        currency="CNY", total_amount=total, lines=tuple(OrderLine(sku=s, quantity=1, unit_price=100) for s in skus),
        payment_transaction_id=txn, hold_reason=hold,
        hold_stamp=Stamp(at=iso(now if hold_at is None else hold_at), event_id="h") if hold else None,
        details_stamp=Stamp(at=iso(0), event_id="d"), logistics_status=logistics, aftersales=cases,
        milestones=Milestones(created_at=iso(0), paid_at=when(paid), deposit_paid_at=when(deposit),
                              ship_requested_at=when(ship_requested), outbound_at=when(outbound),
                              picked_up_at=when(picked_up), delivered_at=when(delivered),
                              cancelled_at=when(cancelled)),
        version=version, created_in_hub_at=iso(0), updated_in_hub_at=iso(now), last_event_time=iso(now))
    lines = list(money)
    if txn:
        lines.append(movement(txn, total, paid if paid is not None else now))
    if lines:
        base = base.model_copy(update={"ledger": {line.record_id: line for line in lines}})
    return derive(base)


def movement(reference: str, amount: int, minutes: float, kind: MoneyKind = MoneyKind.PAYMENT,
             state: MoneyState = MoneyState.CONFIRMED, provider: str = "wechatpay", currency: str = "CNY",
             payment_reference: str = "") -> LedgerLine:
    """A ledger record: `provider` reported `reference` (`kind`, `amount`) in `state` at minute `minutes`."""
    return LedgerLine(provider=provider, kind=kind, reference=reference, state=state, amount=amount,
                      currency=currency, method=MethodClass.ONLINE, payment_reference=payment_reference,
                      occurred_at=iso(minutes), business_date=business_date(iso(minutes)))


def changes(*orders: Order) -> list[OrderChange]:
    """The domain events of an order's successive versions."""
    out: list[OrderChange] = []
    previous: Order | None = None
    for current in orders:
        out += [entry.detail for entry in events_for_change(previous, current) if isinstance(entry.detail, OrderChange)]
        previous = current
    return out
