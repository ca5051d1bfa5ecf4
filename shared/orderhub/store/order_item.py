"""The order <-> DynamoDB item codec: compact, because every order change rewrites the whole item.

DynamoDB bills a write by the item's size in started KB, names included, and the order item is
written once per change. Spelled out, an order with one line passes 1 KB once it has shipped
(2 write units a change); here attribute names are short, lines and stamps are positional,
and empty values are left out, so a typical order stays well under 1 KB. The key (`order_id`)
and the optimistic-lock attribute (`version`) keep their names: expressions use them.

Both directions work field by field (no pydantic dump; one validation on the way back): this
runs twice per channel event.
"""

from __future__ import annotations

from typing import Any

from orderhub.models.order import Order

# Plain string fields: model field -> stored attribute name.
_TEXT = {"channel": "ch", "channel_order_id": "cid", "shop_id": "shop", "currency": "cur",
         "payment_transaction_id": "ptx", "carrier": "car", "tracking_no": "trk", "source_event_id": "src",
         "source_event_time": "srct", "last_event_time": "let", "created_in_hub_at": "hc", "updated_in_hub_at": "hu",
         "hold_reason": "hold"}
_AMOUNTS = {"total_amount": "tot", "deposit_amount": "dep", "paid_amount": "paid", "refunded_amount": "rfd"}
_STATUS_ATTRS = {"status": "st", "payment_status": "pst", "fulfillment_status": "fst", "logistics_status": "lst",
                 "aftersale_status": "ast"}
_STAMPS = {"details_stamp": "dts", "payment_stamp": "pts", "deposit_stamp": "dps", "shipment_stamp": "sts",
           "hold_stamp": "hds", "region_stamp": "rgs", "logistics_stamp": "lgs"}
_MILESTONES = {"created_at": "c", "deposit_paid_at": "dp", "paid_at": "p", "ship_requested_at": "sr",
               "outbound_at": "o", "picked_up_at": "pu", "delivered_at": "d", "completed_at": "f",
               "cancelled_at": "x"}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def order_to_item(order: Order) -> dict[str, Any]:
    # Dict literals rather than the `_s` / `_n` helpers: this runs once per order write, ~40 values each.
    values = order.__dict__
    item: dict[str, Any] = {"order_id": {"S": order.order_id}, "version": {"N": str(order.version)}}
    for field, name in _TEXT.items():
        value = values[field]
        if value:
            item[name] = {"S": value}
    for field, name in _AMOUNTS.items():
        value = values[field]
        if value:
            item[name] = {"N": str(value)}
    for field, name in _STATUS_ATTRS.items():
        item[name] = {"S": values[field]._value_}  # `.value` is a Python-level enum property: 5x slower
    for field, name in _STAMPS.items():
        stamp = values[field]
        if stamp is not None:
            item[name] = {"L": [{"S": stamp.at}, {"S": stamp.event_id}]}
    milestones = {code: {"S": at} for field, code in _MILESTONES.items() if (at := getattr(order.milestones, field))}
    if milestones:
        item["ms"] = {"M": milestones}
    if order.lines:
        item["ln"] = {"L": [{"L": [{"S": li.sku}, {"S": li.name}, {"N": str(li.quantity)}, {"N": str(li.unit_price)}]}
                            for li in order.lines]}
    if order.region.province or order.region.city:
        item["rg"] = {"L": [_s(order.region.province), _s(order.region.city)]}
    if order.aftersales:
        item["as"] = {"M": {cid: {"L": [_s(c.state.value), _s(c.type.value), _n(c.amount), _s(c.reason),
                                        _s(c.channel_state), _s(c.stamp.at), _s(c.stamp.event_id), _s(c.opened_at)]}
                            for cid, c in order.aftersales.items()}}
    if order.packages:
        item["pk"] = {"M": {pid: {"L": [_s(p.at), _s(p.warehouse), _s(p.carrier), _s(p.tracking_no),
                                        {"L": [{"L": [_s(li.sku), _n(li.quantity)]} for li in p.lines]}]}
                            for pid, p in order.packages.items()}}
    return item


def _stamp_from(attr: dict[str, Any]) -> dict[str, str]:
    at, event_id = attr["L"]
    return {"at": at["S"], "event_id": event_id["S"]}


def order_from_item(item: dict[str, Any]) -> Order:
    values: dict[str, Any] = {"order_id": item["order_id"]["S"], "version": int(item["version"]["N"])}
    for field, name in _TEXT.items():
        if name in item:
            values[field] = item[name]["S"]
    for field, name in _AMOUNTS.items():
        if name in item:
            values[field] = int(item[name]["N"])
    for field, name in _STATUS_ATTRS.items():
        if name in item:
            values[field] = item[name]["S"]
    for field, name in _STAMPS.items():
        if name in item:
            values[field] = _stamp_from(item[name])
    stored = item.get("ms", {}).get("M", {})
    values["milestones"] = {field: stored[code]["S"] for field, code in _MILESTONES.items() if code in stored}
    values["lines"] = [{"sku": sku["S"], "name": name["S"], "quantity": int(qty["N"]), "unit_price": int(price["N"])}
                       for sku, name, qty, price in (line["L"] for line in item.get("ln", {}).get("L", ()))]
    if "rg" in item:
        province, city = item["rg"]["L"]
        values["region"] = {"province": province["S"], "city": city["S"]}
    values["aftersales"] = {
        cid: {"state": st["S"], "type": ty["S"], "amount": int(amount["N"]), "reason": reason["S"],
              "channel_state": cs["S"], "stamp": {"at": at["S"], "event_id": eid["S"]}, "opened_at": opened["S"]}
        for cid, (st, ty, amount, reason, cs, at, eid, opened) in
        ((cid, c["L"]) for cid, c in item.get("as", {}).get("M", {}).items())}
    values["packages"] = {
        pid: {"at": at["S"], "warehouse": wh["S"], "carrier": car["S"], "tracking_no": trk["S"],
              "lines": [{"sku": li["L"][0]["S"], "quantity": int(li["L"][1]["N"])} for li in lines["L"]]}
        for pid, (at, wh, car, trk, lines) in ((pid, p["L"]) for pid, p in item.get("pk", {}).get("M", {}).items())}
    # One validation in pydantic-core (Rust) is cheaper than constructing the nested models in Python.
    return Order.model_validate(values)
