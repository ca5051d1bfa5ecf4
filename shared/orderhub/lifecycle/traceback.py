"""Traceback (ST-5): the customer-visible status flow of one order, time spent per stage, where it is now.

Derived from the order's milestones (the channel's clock), so it reads the same whatever order
the events arrived in.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from orderhub.lifecycle.statuses import OrderStatus
from orderhub.models.order import Order

_STAGES: tuple[tuple[str, OrderStatus], ...] = (
    ("created_at", OrderStatus.PENDING_PAYMENT),
    ("paid_at", OrderStatus.PAID),
    ("shipped_at", OrderStatus.SHIPPED),
    ("delivered_at", OrderStatus.DELIVERED),
    ("completed_at", OrderStatus.COMPLETED),
    ("cancelled_at", OrderStatus.CANCELLED),
)


class Stage(BaseModel):
    status: str
    entered_at: str
    seconds_in_stage: int | None  # None for the stage the order is in now


class Traceback(BaseModel):
    stages: list[Stage]
    current_status: str
    current_since: str | None
    seconds_in_current: int | None


def _closed_at(order: Order) -> str | None:
    if order.status != OrderStatus.CLOSED or not order.refunds:
        return None
    return max(r.stamp.at for r in order.refunds.values())


def traceback(order: Order, now: datetime) -> Traceback:
    reached = [(getattr(order.milestones, field), status) for field, status in _STAGES
               if getattr(order.milestones, field)]
    closed = _closed_at(order)
    if closed:
        reached.append((closed, OrderStatus.CLOSED))
    if order.status != OrderStatus.CANCELLED:
        reached = [(at, s) for at, s in reached if s != OrderStatus.CANCELLED]
    reached.sort()
    stages = []
    for i, (at, status) in enumerate(reached):
        nxt = reached[i + 1][0] if i + 1 < len(reached) else None
        seconds = int((datetime.fromisoformat(nxt) - datetime.fromisoformat(at)).total_seconds()) if nxt else None
        stages.append(Stage(status=status.value, entered_at=at, seconds_in_stage=seconds))
    current_since = reached[-1][0] if reached else None
    in_current = int((now - datetime.fromisoformat(current_since)).total_seconds()) if current_since else None
    return Traceback(stages=stages, current_status=order.status.value, current_since=current_since,
                     seconds_in_current=in_current)
