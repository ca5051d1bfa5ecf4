"""Order changes as chat messages for robot subscribers (WeCom / DingTalk groups of people).

Domain events carry no personal data, so neither do these messages. Wording is Chinese first
(the people reading are the merchant's teams), with the canonical codes beside it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from orderhub.money import format_minor

_STATUS = {
    "PENDING_PAYMENT": "待付款", "PAID": "已付款", "ON_HOLD": "暂停发货", "PARTIALLY_SHIPPED": "部分发货",
    "SHIPPED": "已出库", "DELIVERED": "已签收", "COMPLETED": "已完成", "CANCELLED": "已取消", "CLOSED": "已关闭",
}
_AFTERSALE = {"NONE": "无", "IN_PROGRESS": "处理中", "PARTIALLY_REFUNDED": "部分退款", "REFUNDED": "已退款",
              "CLOSED": "已结束"}
_KIND = {"OrderCreated": "新订单", "OrderStatusChanged": "状态变更", "OrderUpdated": "订单更新"}


def render_order_change(bus_event: dict[str, Any], business_tz: str = "Asia/Shanghai") -> tuple[str, str]:
    """(title, markdown) for one domain event as the subscriber queue holds it."""
    d = bus_event["detail"]
    kind = bus_event.get("detail-type", "")
    currency = d.get("currency", "")
    status = d.get("status", "")
    headline = "售后申请" if d.get("aftersale_open_amount") else _KIND.get(kind, kind)
    title = f"{headline} {d.get('channel')} {d.get('channel_order_id')}"
    lines = [f"### {headline}: {d.get('channel')} 订单 {d.get('channel_order_id')}"]
    before = d.get("previous_status")
    moved = f"{_STATUS.get(before, before)} → " if before and before != status else ""
    lines.append(f"- 状态: {moved}**{_STATUS.get(status, status)}** ({status})")
    lines.append(f"- 金额: {format_minor(int(d.get('total_amount', 0)), currency)}, "
                 f"已付 {format_minor(int(d.get('paid_amount', 0)), currency)}")
    if d.get("aftersale_open_amount") or d.get("refunded_amount"):
        state = d.get("aftersale_status", "NONE")
        lines.append(f"- 售后: {_AFTERSALE.get(state, state)}, 申请中 "
                     f"{format_minor(int(d.get('aftersale_open_amount', 0)), currency)}, "
                     f"已退 {format_minor(int(d.get('refunded_amount', 0)), currency)}")
    if d.get("hold_reason"):
        lines.append(f"- 暂停原因: {d['hold_reason']}")
    lines.append(f"- 时间: {_local(d.get('occurred_at', ''), business_tz)} · 订单号 {d.get('order_id')}")
    return title, "\n".join(lines)


def _local(iso: str, zone: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso or "?"
