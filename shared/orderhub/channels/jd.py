"""`jd`: JD.com (POP merchants) orders, pulled from the JD Open Platform (JOS, 京东宙斯).

Contract (events/jd/README.md has it in brief with samples):
- Nothing is pushed: `channel_poller` calls `jingdong.pop.order.enSearch` through
  `https://api.jd.com/routerjson` (`orderhub.pull.jd`). `enSearch` is the current form of
  `jingdong.pop.order.search` (same parameters; the consignee's name, phone and address come back
  encrypted). Business parameters go in `360buy_param_json`: `start_date`/`end_date`
  ("yyyy-MM-dd HH:mm:ss", at most one month apart), `order_state` (comma-separated codes),
  `optional_fields` (required), `page`, `page_size` (<= 100), `sortType`, `dateType` (0 = by
  modified time). [JOS apiId=1566/2388 as mirrored in lostinfo/jos-open-api
  jd/request/PopOrderSearch.php and PopOrderEnSearch.php]
- Reply: `jingdong_pop_order_enSearch_responce.searchorderinfo_result` = {`apiResult`, `orderTotal`,
  `orderInfoList[]`}. One order document is one `orderInfoList` element, camelCase as JOS sends
  it: `orderId`, `venderId`, `orderState`, `payType` ("4-在线支付", "1-货到付款"), `orderTotalPrice`,
  `orderPayment`, `freightPrice` (yuan strings), `orderStartTime`, `paymentConfirmTime`
  ("0001-01-01 00:00:00" when unpaid), `modified`, `itemInfoList[]` (`skuId`, `outerSkuId`,
  `skuName`, `jdPrice`, `itemTotal`), `consigneeInfo` (only `province`/`city` are read), `waybill`,
  `logisticsId`. [a captured order in a public repository; JOS field comments]
- A snapshot is one event: `event_id` = orderId + `modified`, `event_time` = `modified`
  (Asia/Shanghai). `orderState` implies every milestone before it; cash-on-delivery orders
  (`payType` 1) are paid only once JD confirms the receipt of money. JD reports after-sales
  through a separate API (`jingdong.asc.*`), so these snapshots carry no after-sale cases.
- `orderState` codes (JOS doc for `order_state`): WAIT_SELLER_STOCK_OUT, WAIT_GOODS_RECEIVE_CONFIRM,
  WAIT_SELLER_DELIVERY (cross-border), PAUSE, FINISHED_L, TRADE_CANCELED, LOCKED, POP_ORDER_PAUSE,
  WAIT_SEND_CODE (LOC), DELIVERY_RETURN, UN_KNOWN; older docs add SEND_TO_DISTRIBUTION_CENER (sic),
  DISTRIBUTION_CENTER_RECEIVED (LBP/SOPL) and RECEIPTS_CONFIRM.
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
    cst_time,
    describe,
    fen,
    ident,
    load_document,
    milestone_times,
    required_time,
    text,
)
from orderhub.lifecycle.statuses import EventKind
from orderhub.models.order import OrderEvent

E = EventKind

# Milestone -> the order field that says when it happened.
MILESTONE_FIELDS: dict[EventKind, str] = {E.CREATED: "orderStartTime", E.PAID: "paymentConfirmTime",
                                          E.COMPLETED: "orderEndTime"}
PAID_ONWARD = (E.CREATED, E.PAID)
SHIPPED_ONWARD = (*PAID_ONWARD, E.SHIP_REQUESTED)

# orderState -> (milestones the snapshot implies, hold). Hold "" = not held, None = says nothing.
STATUS_MAP: Mapping[str, tuple[tuple[EventKind, ...], str | None]] = {
    "WAIT_SELLER_STOCK_OUT": (PAID_ONWARD, ""),  # 等待出库
    "WAIT_SELLER_DELIVERY": (PAID_ONWARD, ""),  # 等待发货 (cross-border: domestic leg)
    "WAIT_SEND_CODE": (PAID_ONWARD, ""),  # 等待发码 (LOC service orders)
    "SEND_TO_DISTRIBUTION_CENER": (SHIPPED_ONWARD, ""),  # 发往配送中心 (LBP/SOPL; JD's spelling)
    "DISTRIBUTION_CENTER_RECEIVED": (SHIPPED_ONWARD, ""),  # 配送中心已收货
    "WAIT_GOODS_RECEIVE_CONFIRM": (SHIPPED_ONWARD, ""),  # 等待确认收货
    "DELIVERY_RETURN": (SHIPPED_ONWARD, ""),  # 配送退货: went out, came back
    "RECEIPTS_CONFIRM": ((*SHIPPED_ONWARD, E.DELIVERED), ""),  # 收款确认 (delivered, money in)
    "FINISHED_L": ((*SHIPPED_ONWARD, E.COMPLETED), ""),  # 完成
    "TRADE_CANCELED": ((E.CREATED, E.CANCELLED), ""),  # 取消
    "LOCKED": (PAID_ONWARD, "locked by JD (cancellation or after-sale under review)"),  # 已锁定
    "PAUSE": (PAID_ONWARD, "paused before stock-out"),  # 暂停
    "POP_ORDER_PAUSE": (PAID_ONWARD, "POP business pause"),  # pop业务暂停
    "UN_KNOWN": ((), None),  # JD's own "unknown, ask JD operations": says nothing
}

# payType prefix -> paid only in these states (cash on delivery: money comes with the parcel).
PAID_ONLY_IN: Mapping[str, frozenset[str]] = {
    "1": frozenset({"RECEIPTS_CONFIRM", "FINISHED_L"}),  # 1-货到付款
}

# What the poller asks for (`optional_fields`): all the hub reads.
REQUESTED_FIELDS: tuple[str, ...] = (
    "orderId", "venderId", "orderType", "payType", "orderTotalPrice", "orderSellerPrice", "orderPayment",
    "freightPrice", "sellerDiscount", "orderState", "orderStateRemark", "orderStartTime", "orderEndTime",
    "paymentConfirmTime", "modified", "itemInfoList", "consigneeInfo", "waybill", "logisticsId",
)
ITEM_FIELDS: tuple[str, ...] = (
    "skuId", "outerSkuId", "skuName", "jdPrice", "giftPoint", "wareId", "itemTotal", "productNo",
    "serviceName", "newStoreId", "id", "invoiceContentId", "itemExt",
)
CONSIGNEE_FIELDS: tuple[str, ...] = (
    "fullname", "telephone", "mobile", "fullAddress", "province", "provinceId", "city", "cityId", "county",
    "countyId", "town", "townId", "desen_telephone", "desen_mobile",
)
# Order fields JOS may return beside the requested ones: known, not read.
OTHER_FIELDS: tuple[str, ...] = (
    "orderSource", "deliveryType", "invoiceInfo", "orderRemark", "venderRemark", "balanceUsed", "pin", "realPin",
    "open_id_buyer", "xid_buyer", "returnOrder", "vatInfo", "directParentOrderId", "parentOrderId", "customs",
    "customsModel", "storeOrder", "idSopShipmenttype", "idShipmenttype", "scDT", "serviceFee", "pauseBizInfo",
    "taxFee", "tuiHuoWuYou", "orderSign", "storeId", "mdbStoreId", "sendpayMap", "dataVersion", "outBoundDate",
    "flag", "couponDetailList", "invoiceEasyInfo", "commission", "menDianId",
)


def _known_fields() -> frozenset[str]:
    paths = set(REQUESTED_FIELDS) | set(OTHER_FIELDS)
    paths |= {f"itemInfoList[].{f}" for f in ITEM_FIELDS}
    paths |= {f"consigneeInfo.{f}" for f in CONSIGNEE_FIELDS}
    paths |= {f"couponDetailList[].{f}" for f in ("orderId", "skuId", "couponType", "couponPrice")}
    paths |= {f"invoiceEasyInfo.{f}" for f in ("invoiceState", "invoiceType", "invoiceContentId", "invoiceTitle",
                                                "invoiceCode")}
    paths |= {f"commission.{f}" for f in ("amount", "centFactor", "cent", "currency", "currencyCode")}
    return frozenset(paths)


class JdChannel(Channel):
    name = "jd"
    push = False
    known_fields = _known_fields()
    status_map = STATUS_MAP
    paid_only_in = PAID_ONLY_IN

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        raise Unauthorized("jd orders are pulled from JOS, not pushed to the hub")

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
        order_id = ident(order, "orderId")
        modified = required_time(order, "modified")
        state = text(order, "orderState")
        pay_type = text(order, "payType")
        mapped = self.status_map.get(state)
        kinds: tuple[EventKind, ...] = ()
        hold: str | None = None
        gaps: tuple[str, ...] = ()
        if mapped is None:
            gaps = (f"orderState={state}",)
        else:
            kinds, hold = mapped
            paid_states = self.paid_only_in.get(pay_type.split("-", 1)[0])
            if paid_states is not None and state not in paid_states:
                kinds = tuple(k for k in kinds if k is not E.PAID)
            elif kinds and E.PAID not in kinds and cst_time(order, "paymentConfirmTime"):
                # A state that no longer says "paid" (TRADE_CANCELED) still says when the money came
                # in: a pull that first meets the order cancelled must not take it for unpaid.
                kinds = (*kinds, E.PAID)

        event: dict[str, Any] = {
            "channel": self.name, "channel_order_id": order_id, "shop_id": text(order, "venderId"),
            "event_id": f"{order_id}@{ymdhms(modified)}", "event_time": modified,
            "channel_code": f"orderState={state}", "kinds": kinds, "gaps": gaps, "drift": drift, "hold": hold,
            "milestone_times": milestone_times(order, MILESTONE_FIELDS, kinds),
        }
        lines = self._lines(order)
        consignee = order.get("consigneeInfo")
        if consignee is not None and not isinstance(consignee, dict):
            raise Malformed("consigneeInfo must be an object")
        if lines:
            event["details"] = {"currency": "CNY", "total_amount": fen(order, "orderPayment"), "lines": lines,
                                "region": {"province": text(consignee or {}, "province"),
                                           "city": text(consignee or {}, "city")}}
        if E.PAID in kinds and order.get("orderPayment") not in (None, ""):
            event["payment"] = {"amount": fen(order, "orderPayment"), "method": pay_type[:32]}
        waybill, carrier = text(order, "waybill"), text(order, "logisticsId")
        if waybill and carrier:
            event["shipment"] = {"carrier": carrier[:32], "tracking_no": waybill.split(",")[0].strip()[:64]}
        return OrderEvent.model_validate(event)

    @staticmethod
    def _lines(order: Mapping[str, Any]) -> list[dict[str, Any]]:
        items = order.get("itemInfoList")
        if items is None:
            return []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise Malformed("itemInfoList must be a list of items")
        lines = []
        for index, item in enumerate(items):
            where = f"itemInfoList[{index}]"
            sku = text(item, "outerSkuId") or text(item, "skuId")
            if not sku:
                raise Malformed(f"missing {where}.skuId")
            lines.append({"sku": sku[:64], "name": text(item, "skuName")[:200],
                          "quantity": count(item, "itemTotal", where), "unit_price": fen(item, "jdPrice", where)})
        return lines


__all__ = ["CHANNEL", "client_request"]

CHANNEL = JdChannel()
