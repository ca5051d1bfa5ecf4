"""Traceback (ST-5): an order's customer-visible flow, time spent per stage, and where it is stuck now.

Derived from the order's milestones (the reporters' clocks), so it reads the same whatever order
the events arrived in. The flow follows the goods, not the buttons: "ship requested" (a person
or the channel marked it shipped) and "outbound" (the warehouse scanned it out) are separate
stages, so the 17 hours a parcel waits on a packing table show up as 17 hours in one stage.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from orderhub.lifecycle.statuses import AFTERSALE_ENDED, OrderStatus
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
    return int((until - datetime.fromisoformat(start)).total_seconds())


def _closed_at(order: Order) -> str | None:
    if order.status != OrderStatus.CLOSED:
        return None
    refunded = [c.stamp.at for c in order.aftersales.values() if c.state.value == "REFUNDED"]
    return max(refunded, default=None)


def traceback(order: Order, now: datetime) -> Traceback:
    waits = {name: wait for _, name, wait in _FLOW}
    reached = [(at, name) for field, name, _ in _FLOW if (at := getattr(order.milestones, field))]
    closed = _closed_at(order)
    if closed:
        reached.append((closed, "CLOSED"))
        waits["CLOSED"] = ""
    reached.sort()
    stages = [Stage(stage=name, entered_at=at,
                    seconds_in_stage=_seconds(at, reached[i + 1][0]) if i + 1 < len(reached) else None)
              for i, (at, name) in enumerate(reached)]
    current = reached[-1] if reached else None
    ended = order.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.CLOSED)
    waiting = "" if ended or current is None else waits[current[1]]
    if order.status is OrderStatus.ON_HOLD and not ended:
        waiting = f"release of the hold ({order.hold_reason or 'presale: balance due'})"
    cases = [AftersaleFlow(case_id=cid, type=c.type.value, state=c.state.value, amount=c.amount,
                           opened_at=c.opened_at, last_change_at=c.stamp.at, open=c.state not in AFTERSALE_ENDED)
             for cid, c in sorted(order.aftersales.items(), key=lambda kv: kv[1].opened_at)]
    return Traceback(status=order.status.value, stages=stages, current_stage=current[1] if current else None,
                     current_since=current[0] if current else None,
                     seconds_in_current=_seconds(current[0], now) if current else None,
                     waiting_for=waiting, aftersales=cases)
