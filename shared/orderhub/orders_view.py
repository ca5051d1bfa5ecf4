"""What the operations API returns: the canonical order, and its dual timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderhub.lifecycle.traceback import traceback
from orderhub.models.order import Order
from orderhub.store.orders import EventLogEntry

# Merge bookkeeping that says nothing to a reader of the order.
_INTERNAL = {"details_stamp", "payment_stamp", "shipment_stamp", "refunds"}


def order_view(order: Order) -> dict[str, Any]:
    view = order.model_dump(mode="json", exclude=_INTERNAL)
    view["refunds"] = [{"refund_id": rid, "amount": r.amount, "at": r.stamp.at}
                       for rid, r in sorted(order.refunds.items(), key=lambda kv: kv[1].stamp.key())]
    return view


def timeline_view(order: Order, entries: list[EventLogEntry], now: datetime) -> dict[str, Any]:
    """The customer-visible status flow beside the system event log (raw bodies left out)."""
    return {
        "order_id": order.order_id,
        "status_flow": traceback(order, now).model_dump(mode="json"),
        "event_log": [e.model_dump(mode="json", exclude={"raw_body", "raw_headers", "expires_at"})
                      for e in sorted(entries, key=lambda e: e.event_key)],
    }
