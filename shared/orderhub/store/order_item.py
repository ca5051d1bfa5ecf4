"""The order <-> DynamoDB item codec: compact, because every order change rewrites the whole item.

DynamoDB bills a write by the item's size in started KB, names included, and the order item is
written once per change. Spelled out, an order with one line passes 1 KB once it has shipped
(2 write units a change); here attribute names are short, lines and stamps are positional,
and defaults are left out, so a typical order stays well under 1 KB. The key (`order_id`) and
the optimistic-lock attribute (`version`) keep their names: expressions use them.
"""

from __future__ import annotations

from typing import Any

from orderhub.models.order import Order
from orderhub.store.attributes import from_item, to_item

# field name -> stored attribute name (unlisted fields keep their names)
_NAMES: dict[str, str] = {
    "channel": "ch", "channel_order_id": "cid", "shop_id": "shop", "status": "st", "payment_status": "pst",
    "fulfillment_status": "fst", "aftersale_status": "ast", "currency": "cur", "total_amount": "tot",
    "paid_amount": "paid", "refunded_amount": "rfd", "lines": "ln", "region": "rg",
    "payment_transaction_id": "ptx", "carrier": "car", "tracking_no": "trk", "milestones": "ms",
    "refunds": "rf", "details_stamp": "dts", "payment_stamp": "pts", "shipment_stamp": "sts",
    "source_event_id": "src", "source_event_time": "srct", "last_event_time": "let",
    "created_in_hub_at": "hc", "updated_in_hub_at": "hu",
}
_FIELDS = {stored: name for name, stored in _NAMES.items()}
_MILESTONES = {"created_at": "c", "paid_at": "p", "shipped_at": "s", "delivered_at": "d", "completed_at": "f",
               "cancelled_at": "x"}
_MILESTONE_FIELDS = {stored: name for name, stored in _MILESTONES.items()}
_STAMPS = ("details_stamp", "payment_stamp", "shipment_stamp")
_LINE = ("sku", "name", "quantity", "unit_price")


def _stamp_out(stamp: dict) -> list[str]:
    return [stamp["at"], stamp["event_id"]]


def _stamp_in(stored: list[str]) -> dict[str, str]:
    return {"at": stored[0], "event_id": stored[1]}


def order_to_item(order: Order) -> dict[str, Any]:
    values = order.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    for name in _STAMPS:
        if name in values:
            values[name] = _stamp_out(values[name])
    if "milestones" in values:
        values["milestones"] = {_MILESTONES[k]: v for k, v in values["milestones"].items()}
    if "lines" in values:
        values["lines"] = [[line.get(f, "") for f in _LINE] for line in order.model_dump(mode="json")["lines"]]
    if "region" in values:
        region = order.region
        values["region"] = [region.province, region.city]
    if "refunds" in values:
        values["refunds"] = {rid: [r["amount"], *_stamp_out(r["stamp"])] for rid, r in values["refunds"].items()}
    return to_item({_NAMES.get(k, k): v for k, v in values.items()})


def order_from_item(item: dict[str, Any]) -> Order:
    values = {_FIELDS.get(k, k): v for k, v in from_item(item).items()}
    for name in _STAMPS:
        if name in values:
            values[name] = _stamp_in(values[name])
    if "milestones" in values:
        values["milestones"] = {_MILESTONE_FIELDS[k]: v for k, v in values["milestones"].items()}
    if "lines" in values:
        values["lines"] = [dict(zip(_LINE, line, strict=True)) for line in values["lines"]]
    if "region" in values:
        values["region"] = dict(zip(("province", "city"), values["region"], strict=True))
    if "refunds" in values:
        values["refunds"] = {rid: {"amount": r[0], "stamp": _stamp_in(r[1:])} for rid, r in values["refunds"].items()}
    return Order.model_validate(values)
