"""What the hub should hold, computed from what was sent alone (never from the hub's stores).

The merge is commutative, associative and idempotent (docs/decisions.md §2, checked by
tests/unit/test_convergence.py), so an order's final state is the pure merge of its distinct
sent events in channel time order. It is also a join: an event that adds something to the merge
of all the order's other events adds something whatever subset of them came first, so it changes
the order (one new version) in every arrival order; an event that adds nothing to it may or may
not, depending on what came before. Hence bounds on the number of versions an order must have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.demo.traffic import encode
from orderhub.channels.mall import CHANNEL
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event, hub_order_id
from orderhub.models.order import Order, OrderEvent


@dataclass(frozen=True)
class ExpectedOrder:
    order: Order  # the final state, bookkeeping fields aside
    events: int  # distinct events sent
    must_change: int  # events that change the order in every arrival order (a version each)

    def fields(self) -> dict[str, Any]:
        return comparable(self.order)


def comparable(order: Order) -> dict[str, Any]:
    return order.model_dump(exclude=HUB_BOOKKEEPING_FIELDS)


def _fold(events: list[OrderEvent]) -> Order | None:
    order = None
    for event in sorted(events, key=lambda e: (e.event_time, e.event_id)):
        order, _ = apply_event(order, event)
    return order


def _adds_something(others: list[OrderEvent], event: OrderEvent) -> bool:
    before = _fold(others)
    after, _ = apply_event(before, event)
    return after != before


def expected_mall_orders(sent: list[dict[str, Any]]) -> dict[str, ExpectedOrder]:
    """Each order's expected final state and version bounds, from the mall events sent (duplicates once)."""
    by_order: dict[str, list[OrderEvent]] = {}
    for raw in {e["event_id"]: e for e in sent}.values():
        (event,) = CHANNEL.parse(encode(raw))
        by_order.setdefault(hub_order_id("mall", event.channel_order_id or ""), []).append(event)
    expected = {}
    for order_id, events in by_order.items():
        final = _fold(events)
        assert final is not None
        must = sum(_adds_something(events[:i] + events[i + 1:], e) for i, e in enumerate(events))
        expected[order_id] = ExpectedOrder(final, len(events), must)
    return expected


def differing_fields(expected: ExpectedOrder, stored: Order) -> list[str]:
    want, got = expected.fields(), comparable(stored)
    return sorted(k for k in want if want[k] != got.get(k))
