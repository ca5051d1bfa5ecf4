"""Builders for mall events in unit tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=CST)


def mall_event(n: int, event_type: str, minutes: int, order_no: str = "M1", **order: Any) -> dict[str, Any]:
    return {"event_id": f"evt_{order_no}_{n:03d}", "event_type": event_type,
            "event_time": (T0 + timedelta(minutes=minutes)).isoformat(), "shop_id": "mini-01",
            "order": {"order_no": order_no, **order}}


def created(n: int = 1, minutes: int = 0, total: int = 25800, order_no: str = "M1") -> dict[str, Any]:
    return mall_event(n, "order.created", minutes, order_no, currency="CNY", total_amount=total,
                      lines=[{"sku": "TEA-LJ-250", "quantity": 2, "unit_price": total // 2}],
                      receiver={"name": "张三", "phone": "13800138000", "province": "浙江省", "city": "杭州市"})


def paid(n: int = 2, minutes: int = 1, amount: int = 25800, order_no: str = "M1") -> dict[str, Any]:
    return mall_event(n, "order.paid", minutes, order_no,
                      payment={"transaction_id": f"42000{n}", "method": "wechat_pay", "amount": amount})


def shipped(n: int = 3, minutes: int = 60, order_no: str = "M1") -> dict[str, Any]:
    return mall_event(n, "order.shipped", minutes, order_no, shipment={"carrier": "SF", "tracking_no": "SF001"})


def refunded(n: int, minutes: int, amount: int, refund_id: str = "RF1", order_no: str = "M1") -> dict[str, Any]:
    return mall_event(n, "order.refunded", minutes, order_no,
                      refund={"refund_id": refund_id, "amount": amount, "reason": "test"})
