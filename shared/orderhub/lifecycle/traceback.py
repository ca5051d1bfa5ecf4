"""Traceback (ST-5): an order's customer-visible flow, time spent per stage, and where it is stuck now.

Derived from the order's milestones (the reporters' clocks), so it reads the same whatever order
the events arrived in. The flow follows the goods, not the buttons: "ship requested" (a person
or the channel marked it shipped) and "outbound" (the warehouse scanned it out) are separate
stages, so the 17 hours a parcel waits on a packing table show up as 17 hours in one stage.

Stages are listed in the order of the flow, not of their times: each milestone comes from its own
reporter's clock (shop, warehouse, carrier), and a carrier whose clock is a minute behind the
warehouse's must not put the order back at "outbound". A stage whose successor was stamped earlier
by another clock lasted 0 seconds, never a negative time.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from orderhub.lifecycle.statuses import AFTERSALE_ENDED, OrderStatus, PaymentStatus
from orderhub.models.order import Order

# (milestone field, stage name, what the order waits for while in that stage)
_FLOW: tuple[tuple[str, str, str], ...] = (
    ("created_at", "ORDERED", "payment"),
    ("deposit_paid_at", "DEPOSIT_PAID", "the balance payment"),
    ("paid_at", "PAID", "a ship request"),
    ("ship_requested_at", "SHIP_REQUESTED", "the warehouse's physical outbound scan"),
    ("outbound_at", "OUTBOUND", "the carrier's first scan"),
    ("picked_up_at", "WITH_CARRIER", "delivery"),
    ("delivered_at", "DELIVERED", "the buyer's confirmation"),
    ("completed_at", "COMPLETED", ""),
    ("cancelled_at", "CANCELLED", ""),
)
_WAITS = {name: wait for _, name, wait in _FLOW}
_ENDED = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.CLOSED})
# Money taken and not (all) given back yet: a cancelled order still waits for its refund.
_MONEY_HELD = frozenset({PaymentStatus.PAID, PaymentStatus.DEPOSIT_PAID, PaymentStatus.PARTIALLY_REFUNDED})


class Stage(BaseModel):
    stage: str
    entered_at: str
    seconds_in_stage: int | None  # None for the stage the order is in now


class AftersaleFlow(BaseModel):
    case_id: str
    type: str
    state: str
    amount: int
    opened_at: str
    last_change_at: str
    open: bool


class Traceback(BaseModel):
    status: str
    stages: list[Stage]
    current_stage: str | None
    current_since: str | None
    seconds_in_current: int | None
    waiting_for: str  # what the order is stuck waiting for ("" when it has ended)
    aftersales: list[AftersaleFlow]


def _seconds(start: str, end: str | datetime) -> int:
    until = end if isinstance(end, datetime) else datetime.fromisoformat(end)
    return max(0, int((until - datetime.fromisoformat(start)).total_seconds()))


def _closed_at(order: Order) -> str | None:
    if order.status != OrderStatus.CLOSED:
        return None
    refunded = [c.stamp.at for c in order.aftersales.values() if c.state.value == "REFUNDED"]
    return max(refunded, key=datetime.fromisoformat, default=None)  # reporters' offsets may differ


def _waiting_for(order: Order, current_stage: str | None) -> str:
    if order.status is OrderStatus.CANCELLED and order.payment_status in _MONEY_HELD:
        return "the refund of the payment"
    if current_stage is None or order.status in _ENDED:
        return ""
    if order.status is OrderStatus.ON_HOLD:
        return f"release of the hold ({order.hold_reason or 'presale: balance due'})"
    if order.status is OrderStatus.PARTIALLY_SHIPPED:
        return "the outbound scan of the remaining goods, and the carrier's first scan"
    return _WAITS[current_stage]


def traceback(order: Order, now: datetime) -> Traceback:
    reached = [(at, name) for field, name, _ in _FLOW if (at := getattr(order.milestones, field))]
    closed = _closed_at(order)
    if closed:
        reached.append((closed, "CLOSED"))  # the last stage there is: after a cancellation too
    stages = [Stage(stage=name, entered_at=at,
                    seconds_in_stage=_seconds(at, reached[i + 1][0]) if i + 1 < len(reached) else None)
              for i, (at, name) in enumerate(reached)]
    current = reached[-1] if reached else None
    waiting = _waiting_for(order, current[1] if current else None)
    cases = [AftersaleFlow(case_id=cid, type=c.type.value, state=c.state.value, amount=c.amount,
                           opened_at=c.opened_at, last_change_at=c.stamp.at, open=c.state not in AFTERSALE_ENDED)
             for cid, c in sorted(order.aftersales.items(), key=lambda kv: kv[1].opened_at)]
    return Traceback(status=order.status.value, stages=stages, current_stage=current[1] if current else None,
                     current_since=current[0] if current else None,
                     seconds_in_current=_seconds(current[0], now) if current else None,
                     waiting_for=waiting, aftersales=cases)
