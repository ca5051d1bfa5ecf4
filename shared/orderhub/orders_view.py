"""What the operations API returns: the canonical order, and its dual timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orderhub.lifecycle.machine import effective_hold
from orderhub.lifecycle.traceback import traceback
from orderhub.models.order import Order
from orderhub.store.orders import EventLogEntry

# Merge bookkeeping that says nothing to a reader of the order.
_INTERNAL = {"details_stamp", "payment_stamp", "deposit_stamp", "shipment_stamp", "hold_stamp", "region_stamp",
             "logistics_stamp", "aftersales", "packages"}


def order_view(order: Order) -> dict[str, Any]:
    view = order.model_dump(mode="json", exclude=_INTERNAL)
    view["hold_reason"] = effective_hold(order)
    view["aftersales"] = [{"case_id": cid, "state": c.state.value, "type": c.type.value, "amount": c.amount,
                           "reason": c.reason, "channel_state": c.channel_state, "opened_at": c.opened_at,
                           "updated_at": c.stamp.at}
                          for cid, c in sorted(order.aftersales.items(), key=lambda kv: kv[1].opened_at)]
    view["packages"] = [{"package_id": pid, "outbound_at": p.at, "warehouse": p.warehouse, "carrier": p.carrier,
                         "tracking_no": p.tracking_no,
                         "lines": [{"sku": li.sku, "quantity": li.quantity} for li in p.lines]}
                        for pid, p in sorted(order.packages.items(), key=lambda kv: kv[1].at)]
    return view


def timeline_view(order: Order, entries: list[EventLogEntry], now: datetime) -> dict[str, Any]:
    """The customer-visible status flow beside the system event log (raw bodies left out)."""
    return {
        "order_id": order.order_id,
        "status_flow": traceback(order, now).model_dump(mode="json"),
        "event_log": [e.model_dump(mode="json", exclude={"raw_body", "raw_headers", "expires_at"})
                      for e in sorted(entries, key=lambda e: e.event_key)],
    }
