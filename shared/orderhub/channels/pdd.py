"""`pdd`: Pinduoduo orders, pulled from the Pinduoduo Open Platform.

Contract (events/pdd/README.md has it in brief with samples):
- Nothing is pushed: `channel_poller` calls `pdd.order.number.list.increment.get` through
  `https://gw-api.pinduoduo.com/api/router` (`orderhub.pull.pdd`) with `is_lucky_flag=0`,
  `order_status=5` (all), `refund_status=5` (all), `start_updated_at`/`end_updated_at` (Unix
  seconds, at most 30 minutes apart), `page`, `page_size` (<= 100), `use_has_next=true`.
  [niltor/open-pdd-net-sdk Models/Request/Order/GetOrderNumberListIncrementRequestModel.cs;
  Cherrs/pdd-rs src/requests/pdd_order_number_list_increment_get.rs]
- Reply: `order_sn_increment_get_response` = {`total_count`, `has_next`, `order_sn_list[]`}. One
  order document is one `order_sn_list` element: `order_sn` ("201118-..."), `order_status` (1 待发货,
  2 已发货待签收, 3 已签收), `confirm_status` (0 未成交, 1 已成交, 2 已取消), `group_status` (0 拼团中,
  1 已成团, 2 团失败), `risk_control_status` (0 normal, 1 under review), `refund_status` (1 none or
  closed, 2 in progress, 3 refunding, 4 refunded), `after_sales_status` (0..32, below),
  `trade_type`/`step_order_info` (presale deposit), `pay_amount`, `goods_amount`, `postage`
  (yuan as JSON numbers: read from the JSON text as Decimal, never float), `item_list[]`
  (`goods_id`, `sku_id`, `outer_id`, `goods_name`, `goods_count`, `goods_price`), `updated_at`,
  `created_time`, `confirm_time`, `pay_time`, `shipping_time`, `receive_time` ("yyyy-MM-dd
  HH:mm:ss", Beijing time), `province`/`city` (the only part of the address kept),
  `tracking_number`, `logistics_id`. [niltor/open-pdd-net-sdk
  Models/Response/Order/GetOrderNumberListIncrementResponseModel.cs]
- A snapshot is one event: `event_id` = order_sn + `updated_at`, `event_time` = `updated_at`.
  `order_status` implies every milestone before it (the list only holds paid orders); 已签收 is the
  end of a Pinduoduo trade, so it also completes the order. The order's own after-sale standing
  is one after-sale case keyed by the order number (the list carries no after-sale id or refund
  amount: the case amount is `pay_amount`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from orderhub.channels.base import (
    NO_RULES,
    Channel,
    ChannelSettings,
    FieldRules,
    InboundRequest,
    Malformed,
    Reply,
    Unauthorized,
    ymdhms,
)
from orderhub.channels.taobao import (
    client_request,
    count,
    describe,
    fen,
    load_document,
    milestone_times,
    required_time,
    text,
)
from orderhub.channels.values import ascii_digits
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, EventKind
from orderhub.models.order import OrderEvent

E = EventKind
_KIND_ORDER = tuple(EventKind)  # milestone order (iterating the enum class is a Python generator)

# Milestone -> the order field that says when it happened.
MILESTONE_FIELDS: dict[EventKind, str] = {E.CREATED: "created_time", E.PAID: "pay_time",
                                          E.SHIP_REQUESTED: "shipping_time", E.DELIVERED: "receive_time"}
S = AftersaleState
T = AftersaleType
Kinds = tuple[EventKind, ...]

# order_status -> milestones the snapshot implies (only paid orders are listed).
STATUS_MAP: Mapping[int, Kinds] = {
    1: (E.CREATED, E.PAID),  # 待发货
    2: (E.CREATED, E.PAID, E.SHIP_REQUESTED),  # 已发货待签收
    3: (E.CREATED, E.PAID, E.SHIP_REQUESTED, E.DELIVERED, E.COMPLETED),  # 已签收
}
# Further codes on the same snapshot: (extra milestones, hold reason or None for "no hold").
CONFIRM_MAP: Mapping[int, tuple[Kinds, str | None]] = {
    0: ((), "deal not concluded yet (未成交)"),
    1: ((), None),  # 已成交
    2: ((E.CANCELLED,), None),  # 已取消
}
GROUP_MAP: Mapping[int, tuple[Kinds, str | None]] = {
    0: ((), "group buy forming (拼团中)"),
    1: ((), None),  # 已成团
    2: ((E.CANCELLED,), None),  # 团失败: the money goes back
}
RISK_MAP: Mapping[int, tuple[Kinds, str | None]] = {
    0: ((), None),
    1: ((), "under platform risk review (审核中)"),
}
# Presale (trade_type 1): step_order_info.step_trade_status decides the payment milestones.
STEP_MAP: Mapping[int, Kinds] = {
    0: (),  # 定金未付尾款未付
    1: (E.DEPOSIT_PAID,),  # 定金已付尾款未付
    2: (E.DEPOSIT_PAID, E.PAID),  # 定金已付尾款已付
}
PAYMENT_KINDS = frozenset({E.DEPOSIT_PAID, E.PAID})

# after_sales_status -> the case it reports (None: no case).
AFTER_SALES_MAP: Mapping[int, tuple[AftersaleState, AftersaleType] | None] = {
    0: None,  # 无售后
    2: (S.REQUESTED, T.REFUND_ONLY),  # 买家申请退款，待商家处理
    3: (S.REQUESTED, T.RETURN_REFUND),  # 退货退款，待商家处理
    4: (S.REFUNDING, T.REFUND_ONLY),  # 商家同意退款，退款中
    5: (S.REFUNDING, T.REFUND_ONLY),  # 平台同意退款，退款中
    6: (S.REJECTED, T.REFUND_ONLY),  # 驳回退款，待买家处理
    7: (S.AWAITING_RETURN, T.RETURN_REFUND),  # 已同意退货退款，待用户发货
    8: (S.REQUESTED, T.REFUND_ONLY),  # 平台处理中
    9: (S.REJECTED, T.REFUND_ONLY),  # 平台拒绝退款，退款关闭
    10: (S.REFUNDED, T.REFUND_ONLY),  # 退款成功
    11: (S.CANCELLED, T.REFUND_ONLY),  # 买家撤销
    12: (S.FAILED, T.REFUND_ONLY),  # 买家逾期未处理，退款失败
    13: (S.CANCELLED, T.REFUND_ONLY),  # 买家逾期，超过有效期
    14: (S.REQUESTED, T.EXCHANGE),  # 换货补寄待商家处理
    15: (S.APPROVED, T.EXCHANGE),  # 换货补寄待用户处理
    16: (S.EXCHANGED, T.EXCHANGE),  # 换货补寄成功
    17: (S.FAILED, T.EXCHANGE),  # 换货补寄失败
    18: (S.APPROVED, T.EXCHANGE),  # 换货补寄待用户确认完成
    21: (S.REQUESTED, T.REPAIR),  # 待商家同意维修
    22: (S.AWAITING_RETURN, T.REPAIR),  # 待用户确认发货
    24: (S.CANCELLED, T.REPAIR),  # 维修关闭
    25: (S.EXCHANGED, T.REPAIR),  # 维修成功
    27: (S.APPROVED, T.OTHER),  # 待用户确认收货
    31: (S.APPROVED, T.REFUND_ONLY),  # 已同意拒收退款，待用户拒收
    32: (S.APPROVED, T.RESHIP),  # 补寄待商家发货
}
# refund_status, read when after_sales_status is absent.
REFUND_STATUS_MAP: Mapping[int, tuple[AftersaleState, AftersaleType] | None] = {
    1: None,  # 无售后或售后关闭
    2: (S.REQUESTED, T.REFUND_ONLY),  # 售后处理中
    3: (S.REFUNDING, T.REFUND_ONLY),  # 退款中
    4: (S.REFUNDED, T.REFUND_ONLY),  # 退款成功
}

_ORDER_FIELDS = (
    "order_sn", "order_status", "confirm_status", "group_status", "risk_control_status", "refund_status",
    "after_sales_status", "trade_type", "step_order_info", "is_lucky_flag", "pay_amount", "goods_amount",
    "discount_amount", "postage", "platform_discount", "seller_discount", "capital_free_discount",
    "order_change_amount", "pay_no", "pay_type", "pay_time", "created_time", "confirm_time", "shipping_time",
    "receive_time", "updated_at", "last_ship_time", "urge_shipping_time", "item_list", "country", "province",
    "city", "town", "country_id", "province_id", "city_id", "town_id", "address", "receiver_address",
    "receiver_name", "receiver_phone", "tracking_number", "logistics_id", "shipping_type", "buyer_memo", "remark",
    "invoice_status", "is_pre_sale", "pre_sale_time", "inner_transaction_id", "cat_id_1", "cat_id_2", "cat_id_3",
    "cat_id_4", "stock_out_handle_status", "is_stock_out", "self_contained", "yyps_date", "yyps_time",
    "delivery_one_day", "bonded_warehouse", "free_sf", "home_delivery_type", "delivery_install_value",
    "delivery_home_value", "home_install_value", "support_nationwide_warranty", "return_freight_payer",
    "only_support_replace", "card_info_list", "order_depot_info",
)


def _known_fields() -> frozenset[str]:
    paths = set(_ORDER_FIELDS)
    paths |= {f"item_list[].{f}" for f in ("goods_id", "sku_id", "outer_id", "outer_goods_id", "goods_name",
                                             "goods_price", "goods_spec", "goods_count", "goods_img")}
    paths |= {f"step_order_info.{f}" for f in ("advanced_paid_fee", "step_paid_fee", "step_discount_amount",
                                                 "step_trade_status")}
    paths |= {f"card_info_list[].{f}" for f in ("card_no", "mask_password")}
    depot = ("ware_sn", "ware_type", "ware_name", "ware_id", "depot_code", "depot_name", "depot_id", "depot_type",
             "ware_sub_info_list")
    paths |= {f"order_depot_info.{f}" for f in depot}
    paths |= {f"order_depot_info.ware_sub_info_list[].{f}" for f in ("ware_sn", "ware_quantity", "ware_name",
                                                                      "ware_id")}
    return frozenset(paths)


class PddChannel(Channel):
    name = "pdd"
    push = False
    known_fields = _known_fields()
    status_map = STATUS_MAP
    after_sales_map = AFTER_SALES_MAP
    refund_status_map = REFUND_STATUS_MAP

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        raise Unauthorized("pdd orders are pulled from the Pinduoduo open platform, not pushed to the hub")

    def accepted(self) -> Reply:
        return Reply(404, "")  # never sent: there is no webhook to acknowledge

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        order, drift = self.prepare(load_document(body), rules)
        try:
            return [self._normalise(order, drift)]
        except ValidationError as exc:
            raise Malformed(describe(exc)) from None

    def _normalise(self, order: Mapping[str, Any], drift: tuple[str, ...]) -> OrderEvent:
        order_sn = text(order, "order_sn")
        if not order_sn or len(order_sn) > 64 or not ascii_digits(order_sn.replace("-", "")):
            raise Malformed("order_sn must be the Pinduoduo order number (digits and '-')")
        updated = required_time(order, "updated_at")
        status = required_code(order, "order_status")
        codes = [f"order_status={status}"]
        gaps: list[str] = []
        kinds: Kinds = ()
        hold: str | None = None
        if status not in self.status_map:
            gaps.append(f"order_status={status}")
        else:
            kinds, hold = self.status_map[status], ""
            for key, table in (("confirm_status", CONFIRM_MAP), ("group_status", GROUP_MAP),
                               ("risk_control_status", RISK_MAP)):
                value = code(order, key)
                if value is None:
                    continue
                codes.append(f"{key}={value}")
                if value not in table:
                    gaps.append(f"{key}={value}")
                    continue
                extra, reason = table[value]
                kinds = (*kinds, *extra)
                if reason and not hold:
                    hold = reason
            kinds = self._presale(order, kinds, codes, gaps)
            kinds = tuple(k for k in _KIND_ORDER if k in kinds)

        event: dict[str, Any] = {
            "channel": self.name, "channel_order_id": order_sn,
            "event_id": f"{order_sn}@{ymdhms(updated)}", "event_time": updated,
            "kinds": kinds, "drift": drift, "hold": hold,
            "milestone_times": milestone_times(order, MILESTONE_FIELDS, kinds),
        }
        lines = self._lines(order)
        if lines:
            event["details"] = {"currency": "CNY", "total_amount": fen(order, "pay_amount"), "lines": lines,
                                "region": {"province": text(order, "province"), "city": text(order, "city")}}
        if E.PAID in kinds and order.get("pay_amount") is not None:
            event["payment"] = {"transaction_id": text(order, "pay_no")[:64], "amount": fen(order, "pay_amount"),
                                "method": text(order, "pay_type")[:32]}
        step = order.get("step_order_info")
        if E.DEPOSIT_PAID in kinds and E.PAID not in kinds and isinstance(step, dict):
            event["deposit"] = {"amount": fen(step, "advanced_paid_fee", "step_order_info")}
        tracking, carrier = text(order, "tracking_number"), text(order, "logistics_id")
        if tracking and carrier:
            event["shipment"] = {"carrier": carrier[:32], "tracking_no": tracking[:64]}
        event["aftersales"] = self._aftersale(order, order_sn, codes, gaps)
        event["channel_code"] = "; ".join(codes)
        event["gaps"] = tuple(gaps)
        return OrderEvent.model_validate(event)

    @staticmethod
    def _presale(order: Mapping[str, Any], kinds: Kinds, codes: list[str], gaps: list[str]) -> Kinds:
        step = order.get("step_order_info")
        if code(order, "trade_type") != 1 or step is None:
            return kinds
        if not isinstance(step, dict):
            raise Malformed("step_order_info must be an object")
        value = required_code(step, "step_trade_status", where="step_order_info")
        codes.append(f"step_trade_status={value}")
        if value not in STEP_MAP:
            gaps.append(f"step_trade_status={value}")
            return tuple(k for k in kinds if k not in PAYMENT_KINDS)
        return (*(k for k in kinds if k not in PAYMENT_KINDS), *STEP_MAP[value])

    def _aftersale(self, order: Mapping[str, Any], order_sn: str, codes: list[str],
                   gaps: list[str]) -> list[dict[str, Any]]:
        refund = code(order, "refund_status")
        if refund is not None:
            codes.append(f"refund_status={refund}")
        after = code(order, "after_sales_status")
        if after is not None:
            codes.append(f"after_sales_status={after}")
        # The detailed code when there is one; 0 ("none") with a refund (a failed group buy is
        # refunded without an after-sale) falls back to refund_status.
        if after is not None and (after != 0 or refund in (None, 1)):
            key, value, table = "after_sales_status", after, self.after_sales_map
        elif refund is not None:
            key, value, table = "refund_status", refund, self.refund_status_map
        else:
            return []
        if value not in table:
            gaps.append(f"{key}={value}")
            return []
        meaning = table[value]
        if meaning is None:
            return []
        state, kind = meaning
        return [{"case_id": order_sn, "state": state, "type": kind, "channel_state": f"{key}={value}",
                 "amount": fen(order, "pay_amount") if order.get("pay_amount") is not None else 0}]

    @staticmethod
    def _lines(order: Mapping[str, Any]) -> list[dict[str, Any]]:
        items = order.get("item_list")
        if items is None:
            return []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise Malformed("item_list must be a list of items")
        lines = []
        for index, item in enumerate(items):
            where = f"item_list[{index}]"
            sku = text(item, "outer_id") or text(item, "sku_id") or text(item, "goods_id")
            if not sku:
                raise Malformed(f"missing {where}.sku_id")
            lines.append({"sku": sku[:64], "name": text(item, "goods_name")[:200],
                          "quantity": count(item, "goods_count", where), "unit_price": fen(item, "goods_price", where)})
        return lines


def code(doc: Mapping[str, Any], key: str, where: str = "") -> int | None:
    """An integer status code (JSON number, or its string form); None when absent."""
    value = doc.get(key)
    if type(value) is int:  # the usual case, first
        return value
    if value is None:
        return None
    if isinstance(value, str) and value.lstrip("-") and ascii_digits(value.lstrip("-")) and value.count("-") <= 1 \
            and len(value) <= 20:
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Malformed(f"{f'{where}.{key}' if where else key} must be an integer code")
    return value


def required_code(doc: Mapping[str, Any], key: str, where: str = "") -> int:
    value = code(doc, key, where=where)
    if value is None:
        raise Malformed(f"missing {f'{where}.{key}' if where else key}")
    return value


__all__ = ["CHANNEL", "client_request"]

CHANNEL = PddChannel()
