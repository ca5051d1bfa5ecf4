"""`douyin`: 抖店 (Douyin Shop) message push, as the open platform sends it.

Contract (events/douyin/README.md has it in brief, with samples of every message):

- `POST` with a JSON **array** of messages, `[{"tag": "100", "msg_id": "...", "data": "..."}]`.
  One push can carry several messages, for several orders. `data` is a JSON document encoded
  as a string (the SDKs decode it a second time); an object is accepted as well.
- `app-id`: the application's app key. `event-sign`: lower-case hex MD5 of
  `app_key + raw body + app_secret`. A push that says `sign-method: hmac-sha256` is signed
  with hex HMAC-SHA256 keyed by the app secret over the same string; no `sign-method` means
  MD5. Every secret configured during a rotation is tried, in constant time.
- **Douyin signs no timestamp and no nonce.** A captured push stays valid for ever and can be
  replayed byte for byte. Replay protection rests on the dedupe by `msg_id`, which is the
  event id of the order's log: a replayed message changes nothing.
- Reply `{"code":0,"msg":"success"}` (HTTP 200) once stored, also for messages the hub has no
  use for, or the platform retries them. A refusal is `{"code":1,"msg":<reason>}` with the
  HTTP status of the rejection (401, 400, 413).
- `tag` `"0"` is the verification push sent while the push URL is being enabled: it gets the
  success reply and produces no order event.
- The order is the shop order `p_id` (店铺单, the parent of the SKU orders `s_ids`). Its ids
  exceed 2^53: they are read as exact integers (or digit strings) and kept as strings.
- Times are Unix seconds (UTC); each tag's own time field is read (`MESSAGES`), `update_time`
  failing that. A few messages are documented with no time at all (110 已支付待处理, 126, 209,
  212–218): they cannot be placed among the order's facts, so they are acknowledged, logged with
  a gap and change nothing; the order learns the same from timed messages (`order_status` 105 is
  the risk hold, the next after-sale message carries `aftersale_status`). Money is in fen.

Sources: Douyin's message documents op.jinritemai.com/docs/message-docs/30/* (orders) and
31/* (after-sale), as transcribed by `zsmhub/doudian-sdk` (`message/*.go`: tags, field names and
types, `doudian_sign.go`, `doudian_message.go` for the reply) and
`fudiwei/DotNetCore.SKIT.FlurlHttpClient.ByteDance` (`DouyinShop/Events/*`, guide-docs/153/99 for
the signature); `minibear2021/doudian` (`app-id` must equal the app key); the HMAC-SHA256 variant
and its `sign-method` header from two independent integrations (doubt recorded in
docs/decisions.md). After-sale codes: `zsmhub/doudian-sdk`
`api/afterSale_List/response/afterSale_List_response.go`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from pydantic import ValidationError

from orderhub.channels.base import (
    NO_RULES,
    Channel,
    ChannelRejection,
    ChannelSettings,
    FieldRules,
    InboundRequest,
    Malformed,
    Reply,
    Unauthorized,
    compact_json,
    constant_time_match,
    loads_decimal,
)
from orderhub.channels.values import ascii_digits, signed_int, unix_instant
from orderhub.clock import UNDATED
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, EventKind
from orderhub.models.order import OrderEvent

APP_ID_HEADER = "app-id"
SIGNATURE_HEADER = "event-sign"
SIGN_METHOD_HEADER = "sign-method"
VERIFY_TAG = "0"
RISK_HOLD = "risk control"
_BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # naive times in payloads are Beijing time

_C, _P, _S, _D, _X = (EventKind.CREATED, EventKind.PAID, EventKind.SHIP_REQUESTED, EventKind.COMPLETED,
                      EventKind.CANCELLED)

# order_status (shop order) -> (milestones the snapshot implies, hold: reason, "" released, None silent).
# 105 "已支付" is the paid order the platform keeps from shipping while its risk check runs
# (a vendor sample labels it 已支付(风控订单不发货)); 2 "备货中" is the same order released.
ORDER_STATUS: Mapping[int, tuple[tuple[EventKind, ...], str | None]] = {
    1: ((_C,), None),  # 待确认/待支付: created, awaiting payment
    105: ((_C, _P), RISK_HOLD),  # 已支付: paid, held by the platform's risk control
    2: ((_C, _P), ""),  # 备货中: paid, to be shipped
    101: ((_C, _P, _S), ""),  # 部分发货: part of the SKU orders marked shipped
    3: ((_C, _P, _S), ""),  # 已发货: every SKU order marked shipped
    4: ((_X,), None),  # 已取消
    5: ((_C, _P, _S, _D), ""),  # 已完成: received or auto-confirmed
}


class Message(NamedTuple):
    """What one message tag means: its name, the milestones it reports, where its time is."""

    name: str
    kinds: tuple[EventKind, ...] = ()
    times: tuple[str, ...] = ()  # the data fields holding when it happened, best first
    case: AftersaleState | None = None  # after-sale messages: the state the message itself reports
    hold: str | None = None


# tag -> meaning. Every order and after-sale message Douyin documents; a tag missing here is a gap.
MESSAGES: Mapping[str, Message] = {
    "100": Message("doudian_trade_TradeCreate", (_C,), ("create_time",)),
    "101": Message("doudian_trade_TradePaid", (_C, _P), ("pay_time",)),
    "102": Message("doudian_trade_TradeSellerShip", (_S,), ("update_time",)),
    "103": Message("doudian_trade_TradeSuccess", (_D,), ("complete_time",)),
    "104": Message("doudian_trade_TradeLogisticsChanged", (), ("update_time",)),
    "105": Message("doudian_trade_TradeAddressChanged", (), ("update_time",)),
    "106": Message("doudian_trade_TradeCanceled", (_X,), ("cancel_time",)),
    "108": Message("doudian_trade_TradePartlySellerShip", (_S,), ("update_time",)),
    "109": Message("doudian_trade_TradeAmountChanged", (), ("modify_time",)),
    "110": Message("doudian_trade_TradePending", (_C, _P), (), hold=RISK_HOLD),  # documented without a time
    "111": Message("doudian_trade_TradeAddressChangeApplied", (), ("apply_time",)),  # a request, not a change
    "113": Message("doudian_trade_TradeMemoModify", (), ("update_time",)),
    "126": Message("doudian_trade_TradeAppointment", (), ()),  # promised ship time changed, no event time
    "200": Message("doudian_refund_RefundCreated", (), ("apply_time",), AftersaleState.REQUESTED),
    "201": Message("doudian_refund_RefundAgreed", (), ("agree_time",), AftersaleState.REFUNDING),
    "202": Message("doudian_refund_ReturnApplyAgreed", (), ("agree_time",), AftersaleState.AWAITING_RETURN),
    "203": Message("doudian_refund_BuyerReturnGoods", (), (), AftersaleState.RETURN_SHIPPED),
    "204": Message("doudian_refund_RefundRefused", (), ("refuse_time",), AftersaleState.REJECTED),
    "205": Message("doudian_refund_ReturnApplyRefused", (), ("refuse_time",), AftersaleState.REJECTED),
    "206": Message("doudian_refund_RefundSuccess", (), ("success_time",), AftersaleState.REFUNDED),
    "207": Message("doudian_refund_RefundClosed", (), ("close_time",), AftersaleState.CANCELLED),
    "208": Message("doudian_refund_RefundModified", (), ("modify_time",), AftersaleState.REQUESTED),
    "209": Message("doudian_refund_ExpirationChange", (), ()),  # deadline moved, no event time
    "211": Message("doudian_refund_ExchangeComfirmed", (), (), AftersaleState.RETURN_RECEIVED),
    "212": Message("doudian_refund_ArbitrateApplied", ()),  # arbitration messages carry no time
    "213": Message("doudian_refund_ArbitrateSubmiting", ()),
    "214": Message("doudian_refund_ArbitrateSubmited", ()),
    "215": Message("doudian_refund_ArbitrateCancelled", ()),
    "216": Message("doudian_refund_ArbitrateAudited", ()),
    "217": Message("doudian_refund_ArbitrateServiceIntervene", ()),
    "218": Message("doudian_refund_ArbitrateDiscussUpload", ()),
    "224": Message("doudian_refund_SpecialRefund", (), ("apply_time",), AftersaleState.REQUESTED),
    "225": Message("doudian_refund_SpecialRefundSuccess", (), ("success_time",), AftersaleState.REFUNDED),
    "226": Message("doudian_refund_ResendFillLogistics", ()),  # reship sent: the case status says where it is
    "227": Message("doudian_refund_AuditAgreeResend", (), (), AftersaleState.APPROVED),
}
_TIME_FALLBACK = ("update_time",)

# aftersale_status -> the case's state. 12 售后成功 is REFUNDED unless the case gives goods (below).
AFTERSALE_STATUS: Mapping[int, AftersaleState] = {
    3: AftersaleState.RETURN_RECEIVED,  # 换货待买家收货: return received, replacement on its way
    6: AftersaleState.REQUESTED,  # 待商家同意
    7: AftersaleState.AWAITING_RETURN,  # 待买家退货
    8: AftersaleState.APPROVED,  # 待商家发货 (exchange, reship)
    11: AftersaleState.AWAITING_SECOND_APPROVAL,  # 待商家二次同意 (goods back, refund to approve)
    12: AftersaleState.REFUNDED,  # 售后成功
    14: AftersaleState.EXCHANGED,  # 换货成功
    27: AftersaleState.REJECTED,  # 商家一次拒绝
    28: AftersaleState.CANCELLED,  # 售后失败: closed without money (withdrawn, expired, closed)
    29: AftersaleState.REJECTED,  # 商家二次拒绝
}
# aftersale_type -> case type. 0 退货退款, 1 已发货仅退款, 2 未发货仅退款, 3 换货, 6 价保, 7 补寄.
AFTERSALE_TYPE: Mapping[int, AftersaleType] = {
    0: AftersaleType.RETURN_REFUND, 1: AftersaleType.REFUND_ONLY, 2: AftersaleType.REFUND_ONLY,
    3: AftersaleType.EXCHANGE, 6: AftersaleType.PRICE_PROTECTION, 7: AftersaleType.RESHIP,
}
_GOODS_NOT_MONEY = frozenset({AftersaleType.EXCHANGE, AftersaleType.RESHIP})  # their 售后成功 is EXCHANGED
# pay_type of the paid message.
PAY_TYPE: Mapping[int, str] = {0: "cash_on_delivery", 1: "wechat_pay", 2: "alipay"}

_RECEIVER = ("addr", "name", "tel", "encrypt_name", "encrypt_tel")
_SHIPPED_LINE = ("product_id", "shipped_num", "shipped_order_id", "sku_id", "sku_num")
_DATA_FIELDS = (
    "biz", "p_id", "s_ids", "s_id", "shop_id", "order_status", "order_type", "create_time", "pay_time",
    "pay_amount", "pay_type", "update_time", "complete_time", "cancel_time", "cancel_reason", "modify_time",
    "total_amount", "post_amount", "apply_time", "remark", "star", "exp_delivery_time", "aftersale_id",
    "aftersale_status", "after_sale_status", "aftersale_type", "reason_code", "refund_amount",
    "refund_post_amount", "refund_voucher_num", "agree_time", "refuse_time", "success_time", "close_time",
    "status_deadline", "arbitrate_id", "arbitrate_status", "arbitrate_conclusion",
    "logistics_msg", "receiver_msg", "post_receiver_msg",
)
KNOWN_FIELDS = frozenset(
    {"tag", "msg_id", "data"} | {f"data.{f}" for f in _DATA_FIELDS}
    | {f"data.{holder}.{f}" for holder in ("receiver_msg", "post_receiver_msg") for f in _RECEIVER}
    | {f"data.logistics_msg.{f}" for f in ("express_company_id", "logistics_code", "pack_id",
                                             "shipped_order_info")}
    | {f"data.logistics_msg.shipped_order_info[].{f}" for f in _SHIPPED_LINE}
)


class DouyinChannel(Channel):
    name = "douyin"
    kept_headers = (APP_ID_HEADER, SIGNATURE_HEADER, SIGN_METHOD_HEADER)
    known_fields = KNOWN_FIELDS
    status_map = ORDER_STATUS
    tag_map = MESSAGES
    aftersale_status_map = AFTERSALE_STATUS
    aftersale_type_map = AFTERSALE_TYPE

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        # No timestamp to check: Douyin signs none (see the module docstring on replays).
        signature = request.headers.get(SIGNATURE_HEADER, "")
        app_id = request.headers.get(APP_ID_HEADER, "")
        if not signature:
            raise Unauthorized("missing event-sign")
        if not app_id:
            raise Unauthorized("missing app-id")
        if not settings.app_key:
            raise Unauthorized("the hub has no Douyin app key configured")
        if not hmac.compare_digest(app_id.encode(), settings.app_key.encode()):
            raise Unauthorized("app-id is not the app key this hub is configured for")
        method = request.headers.get(SIGN_METHOD_HEADER, "md5").strip().lower() or "md5"
        if method not in ("md5", "hmac-sha256"):
            raise Unauthorized(f"unsupported sign-method {method[:20]!r}")
        expected = [sign(settings.app_key, secret, request.body, method) for secret in settings.secrets]
        if not constant_time_match(expected, signature.strip().lower()):
            raise Unauthorized("signature does not match")

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        messages = loads_decimal(body)
        if not isinstance(messages, list):
            raise Malformed("body must be a JSON array of messages")
        events = []
        for index, raw in enumerate(messages):
            event = self._message(index, raw, rules)
            if event is not None:
                events.append(event)
        return events

    def _message(self, index: int, raw: Any, rules: FieldRules) -> OrderEvent | None:
        where = f"[{index}]"
        if not isinstance(raw, dict):
            raise Malformed(f"{where}: a message must be an object")
        tag = raw.get("tag")
        if isinstance(tag, int) and not isinstance(tag, bool):
            tag = str(tag)
        if not isinstance(tag, str) or not ascii_digits(tag):
            raise Malformed(f"{where}.tag: must be a numeric tag")
        if tag == VERIFY_TAG:
            return None  # the push URL check: acknowledged, nothing to apply
        msg_id = raw.get("msg_id")
        if not isinstance(msg_id, str | int) or isinstance(msg_id, bool) or not str(msg_id).strip():
            raise Malformed(f"{where}.msg_id: required")
        msg_id = str(msg_id).strip()
        if len(msg_id) > 128:
            raise Malformed(f"{where}.msg_id: longer than 128 characters")
        data = raw.get("data")
        if isinstance(data, str):
            try:
                data = loads_decimal(data)
            except Malformed as exc:
                raise Malformed(f"{where}.data: not a JSON document we accept: {exc.reason}") from None
        if not isinstance(data, dict):
            raise Malformed(f"{where}.data: must be a JSON object (or a string holding one)")
        message, drift = self.prepare({**raw, "tag": tag, "data": data}, rules)
        data = message["data"]
        meaning = MESSAGES.get(tag)
        if "p_id" not in data:
            if meaning is None:
                return None  # not an order message (products, shops...): nothing for the hub
            raise Malformed(f"{where}.data.p_id: required for tag {tag}")
        return _normalise(tag, meaning, msg_id, data, drift, where)

    def accepted(self) -> Reply:
        return Reply(200, '{"code":0,"msg":"success"}')

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return Reply(rejection.status_code, compact_json({"code": 1, "msg": rejection.reason}))


def _normalise(tag: str, meaning: Message | None, msg_id: str, data: Mapping[str, Any],
               drift: tuple[str, ...], where: str) -> OrderEvent:
    gaps: list[str] = []
    codes = [f"tag={tag}"]
    kinds: list[EventKind] = []
    hold: str | None = None
    if meaning is None:
        gaps.append(f"tag={tag}")
    else:
        kinds += meaning.kinds
        hold = meaning.hold
    status = _code(data, "order_status", where)
    if status is not None:
        codes.append(f"order_status={status}")
        known = ORDER_STATUS.get(status)
        if known is None:
            gaps.append(f"order_status={status}")
        else:
            kinds += [k for k in known[0] if k not in kinds]
            hold = known[1] if known[1] is not None else hold

    event: dict[str, Any] = {
        "channel": "douyin", "channel_order_id": _order_id(data.get("p_id"), f"{where}.data.p_id"),
        "event_id": msg_id, "drift": drift,
    }
    if data.get("shop_id") is not None:
        event["shop_id"] = str(data["shop_id"])
    times = (meaning.times if meaning else ()) + _TIME_FALLBACK
    at = next((t for t in (_instant(data.get(f), f"{where}.data.{f}") for f in times) if t is not None), None)
    if at is None:
        # Nothing says when it happened, so it cannot be placed among the order's facts: it is
        # acknowledged and logged, and the order learns the same thing from its timed messages.
        gaps.append(f"time: tag {tag} carries none")
        event |= {"event_time": UNDATED, "kinds": (), "channel_code": ";".join(codes)}
        return _event(event, gaps, where)

    event |= {"event_time": at, "kinds": tuple(kinds), "hold": hold}
    paid = _code(data, "pay_amount", where)
    if tag == "101" and paid is not None:
        pay_type = _code(data, "pay_type", where)
        method = "" if pay_type is None else PAY_TYPE.get(pay_type, f"pay_type={pay_type}")
        event["payment"] = {"amount": paid, "method": method}
    shipment = data.get("logistics_msg")
    if isinstance(shipment, dict) and shipment.get("logistics_code") and shipment.get("express_company_id"):
        event["shipment"] = {"carrier": str(shipment["express_company_id"]),
                             "tracking_no": str(shipment["logistics_code"])}
    if tag == "105":
        region = _region(data.get("receiver_msg"))
        if region is None:
            gaps.append("receiver_msg.addr: no province/city")
        else:
            event["region"] = region
    if "aftersale_id" in data and meaning is not None and meaning.name.startswith("doudian_refund"):
        case = _case(tag, meaning, data, where, gaps, codes)
        if case is not None:
            event["aftersales"] = (case,)
    event["channel_code"] = ";".join(codes)
    return _event(event, gaps, where)


def _case(tag: str, meaning: Message, data: Mapping[str, Any], where: str, gaps: list[str],
          codes: list[str]) -> dict[str, Any] | None:
    type_code = _code(data, "aftersale_type", where)
    case_type = AftersaleType.OTHER
    if type_code is not None:
        codes.append(f"aftersale_type={type_code}")
        if type_code in AFTERSALE_TYPE:
            case_type = AFTERSALE_TYPE[type_code]
        else:
            gaps.append(f"aftersale_type={type_code}")
    status = _code(data, "aftersale_status", where)
    if status is None:
        status = _code(data, "after_sale_status", where)  # the reship-agreed message spells it so
    state = meaning.case
    if status is not None:
        codes.append(f"aftersale_status={status}")
        if status in AFTERSALE_STATUS:
            state = AFTERSALE_STATUS[status]
            if state is AftersaleState.REFUNDED and case_type in _GOODS_NOT_MONEY:
                state = AftersaleState.EXCHANGED
        else:
            gaps.append(f"aftersale_status={status}")
    if state is None:
        return None
    amount = (_code(data, "refund_amount", where) or 0) + (_code(data, "refund_post_amount", where) or 0)
    return {"case_id": _order_id(data["aftersale_id"], f"{where}.data.aftersale_id"), "state": state,
            "type": case_type, "amount": amount, "channel_state": f"tag={tag};aftersale_status={status}"[:64],
            "reason": f"reason_code={data['reason_code']}" if data.get("reason_code") is not None else ""}


def _event(event: dict[str, Any], gaps: list[str], where: str) -> OrderEvent:
    event["gaps"] = tuple(gaps)
    try:
        return OrderEvent.model_validate(event)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        raise Malformed(f"{where}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def _order_id(value: Any, where: str) -> str:
    """Douyin's 19-digit ids, exact: an integer as parsed (never a float) or a digit string."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and ascii_digits(value) and len(value) <= 64:
        return value
    raise Malformed(f"{where}: must be an integer id or a digit string")


def _code(data: Mapping[str, Any], field: str, where: str) -> int | None:
    value = data.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return signed_int(value, f"{where}.data.{field}")


def _instant(value: Any, where: str) -> datetime | None:
    """Unix seconds (milliseconds accepted), or a 'YYYY-MM-DD HH:MM:SS' / ISO string (Beijing time if naive)."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, str) and ascii_digits(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return unix_instant(value, where)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=_BEIJING)
    raise Malformed(f"{where}: not a time")


def _region(receiver: Any) -> dict[str, str] | None:
    """Province and city from receiver_msg.addr (a JSON string); nothing else of the address is read."""
    if not isinstance(receiver, dict):
        return None
    addr = receiver.get("addr")
    if isinstance(addr, str):
        try:
            addr = loads_decimal(addr)
        except Malformed:  # the region is a detail: an unreadable address leaves it unknown
            return None
    if not isinstance(addr, dict):
        return None
    province, city = (part.get("name") if isinstance(part, dict) else None
                      for part in (addr.get("province"), addr.get("city")))
    if not (isinstance(province, str) and province and isinstance(city, str) and city):
        return None
    return {"province": province, "city": city}


def sign(app_key: str, secret: str, body: bytes, method: str = "md5") -> str:
    """`event-sign` for a push body: what Douyin sends and what the hub recomputes."""
    material = app_key.encode() + body + secret.encode()
    if method == "hmac-sha256":
        return hmac.new(secret.encode(), material, hashlib.sha256).hexdigest()
    return hashlib.md5(material, usedforsecurity=False).hexdigest()


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What Douyin sends: the body as is, `app-id` and `event-sign` (HMAC if the headers ask for it)."""
    sent = {k.lower(): v for k, v in headers.items()}
    method = sent.get(SIGN_METHOD_HEADER, "md5").lower()
    return ({**sent, "content-type": "application/json", APP_ID_HEADER: app_key,
             SIGNATURE_HEADER: sign(app_key, secret, payload, method)}, payload)


CHANNEL = DouyinChannel()
