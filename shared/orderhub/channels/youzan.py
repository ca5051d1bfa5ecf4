"""`youzan`: 有赞云 (Youzan Cloud) message push, as the platform sends it to a push URL.

Contract (events/youzan/README.md has it in brief, with samples of every message):

- `POST`, `Content-Type: application/json`, one message per request:
  `{"client_id", "id", "kdt_id", "kdt_name", "root_kdt_id", "mode", "msg", "msg_id", "sendCount",
  "sign", "status", "test", "type", "version"}`. `type` is the topic (`trade_TradeCreate`...);
  `id` the business id (the order number `tid` for trade messages); `kdt_id` the shop.
- `msg` is the payload: for `trade_*` messages a JSON document URL-encoded as UTF-8 form data
  (Java's URLEncoder: a space is `+`); the newer `youzan_trade_Refund*` messages send an object.
- Headers: `Event-Sign` = lower-case hex MD5(client_id + raw body + client_secret);
  `Event-Type` = the topic; `Client-Id` = the client id. No timestamp, no nonce: a replay is
  stopped by the dedupe on `msg_id` (part of the event id). The body's own `sign` field
  (MD5 over client_id + msg + secret) is documented as not to be relied on and is not used.
- Reply with a body containing `success` within 5 s: `{"code":0,"msg":"success"}`. Anything else
  is a failure Youzan retries (`sendCount` counts the retries); the hub answers a refusal with
  `{"code":1,"msg":<reason>}` and the HTTP status of the rejection.
- `test: true`: a test push. It gets the success reply and produces no order event.
- Messages arrive unordered. `version` orders messages of the same type ("a higher version
  overrides a lower one"); it is put in the event id after the type, so among same-type
  messages with the same event time the higher version wins every last-writer-wins fact.
- Times are Beijing time `yyyy-MM-dd HH:mm:ss`. The event time is the message's `update_time`;
  a full order also dates its milestones by `created`, `pay_time`, `consign_time` and
  `success_time`. Money is yuan in decimal strings, converted to fen exactly (Decimal).
- The receiver's name, phone and street address are never kept: only `delivery_province` and
  `delivery_city`.

Sources: doc.youzanyun.com message documents (MSG/198, 200, 201, 206, 209, 300, 302; the push
guide 7634 and FAQ 3926/3941/33555/34663), transcribed in `TsangJx/YouZanYunSDK` `Msg/*.cs`
(field names, `version` and `status` semantics, `sign` deprecation) and in a public integration
guide scraped from doc.youzanyun.com (Event-Sign recipe, headers, reply, retries, the two `msg`
shapes); a real `trade_TradeCreate` push published in a PHP integration (encoding, field names,
formats). Doubts are in docs/decisions.md.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

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
from orderhub.channels.values import ascii_digits, ascii_int
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, EventKind
from orderhub.models.order import OrderEvent

SIGNATURE_HEADER = "event-sign"
TYPE_HEADER = "event-type"
CLIENT_ID_HEADER = "client-id"
GROUP_HOLD = "awaiting group or acceptance"
_BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

_C, _P, _S, _D, _X = (EventKind.CREATED, EventKind.PAID, EventKind.SHIP_REQUESTED, EventKind.COMPLETED,
                      EventKind.CANCELLED)

# Main order status -> (milestones the snapshot implies, hold: reason, "" released, None silent).
TRADE_STATUS: Mapping[str, tuple[tuple[EventKind, ...], str | None]] = {
    "WAIT_BUYER_PAY": ((_C,), None),  # 等待买家付款
    "TRADE_PAID": ((_C, _P), None),  # 已支付: transient, what follows decides shipping
    "WAIT_CONFIRM": ((_C, _P), GROUP_HOLD),  # 待确认: paid, group not formed yet / not accepted yet
    "WAIT_SELLER_SEND_GOODS": ((_C, _P), ""),  # 等待卖家发货
    "WAIT_BUYER_CONFIRM_GOODS": ((_C, _P, _S), ""),  # 等待买家确认收货: the seller marked it shipped
    "TRADE_SUCCESS": ((_C, _P, _D), ""),  # 交易成功 (virtual goods succeed without a shipment)
    "TRADE_CLOSED": ((_X,), None),  # 交易关闭: cancelled, unpaid timeout, or fully refunded
}
# order_info's own times for the milestones the status implies.
_MILESTONE_FIELDS = {_C: "created", _P: "pay_time", _S: "consign_time", _D: "success_time"}
_PAID = frozenset({"TRADE_PAID", "WAIT_CONFIRM", "WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_CONFIRM_GOODS",
                   "TRADE_SUCCESS"})


class Topic(NamedTuple):
    kinds: tuple[EventKind, ...] = ()
    case: AftersaleState | None = None  # refund messages: the state of the refund they report
    region: bool = False  # address-change messages


# type -> meaning. Trade topics are also read for their status; a type missing here is a gap.
TOPICS: Mapping[str, Topic] = {
    "trade_TradeCreate": Topic((_C,)),
    "trade_TradePaid": Topic((_C, _P)),
    "trade_TradeBuyerPay": Topic((_C, _P)),  # the order now waits for the seller to ship
    "trade_TradePartlySellerShip": Topic((_S,)),
    "trade_TradeSellerShip": Topic((_S,)),
    "trade_TradeSuccess": Topic((_D,)),
    "trade_TradeClose": Topic((_X,)),
    "trade_TradeMemoModified": Topic(),
    "trade_MessagesTheChangeAddresses": Topic(region=True),  # the seller changed the address
    "youzan_trade_MessagesTheChangeAddressesByBuyer": Topic(region=True),
    "trade_refund_BuyerCreated": Topic(case=AftersaleState.REQUESTED),
    "trade_refund_RefundAgain": Topic(case=AftersaleState.REQUESTED),  # the buyer applies again
    "trade_refund_RefundSellerCreated": Topic(case=AftersaleState.REFUNDING),  # the seller refunds unasked
    "trade_refund_RefundSellerAgree": Topic(case=AftersaleState.REFUNDED),  # refund only: final, money back
    "trade_refund_RefundSellerAgreeReturnGoods": Topic(case=AftersaleState.AWAITING_RETURN),
    "trade_refund_RefundBuyerReturnGoods": Topic(case=AftersaleState.RETURN_SHIPPED),
    "trade_refund_RefundSellerRefuse": Topic(case=AftersaleState.REJECTED),
    "trade_refund_RefundSellerRefuseBuyerReturnGoods": Topic(case=AftersaleState.REJECTED),
    "trade_refund_RefundSuccess": Topic(case=AftersaleState.REFUNDED),  # return received, refunded
    "trade_refund_RefundClosed": Topic(case=AftersaleState.CANCELLED),  # withdrawn by the buyer
    "trade_refund_SysRefund": Topic(case=AftersaleState.REFUNDED),  # one-click / system refund
    "trade_refund_YouzanInterApplied": Topic(case=AftersaleState.REQUESTED),  # Youzan asked to step in
    "youzan_trade_RefundCreated": Topic(case=AftersaleState.REQUESTED),
    "youzan_trade_RefundSellerAgree": Topic(case=AftersaleState.APPROVED),  # RefundSuccess follows
    "youzan_trade_RefundSuccess": Topic(case=AftersaleState.REFUNDED),
    "youzan_trade_RefundClosed": Topic(case=AftersaleState.CANCELLED),
}
REFUND_TYPE: Mapping[str, AftersaleType] = {
    "REFUND_ONLY": AftersaleType.REFUND_ONLY, "REFUND_AND_RETURN": AftersaleType.RETURN_REFUND,
    "EXCHANGE_GOODS_FLOW": AftersaleType.EXCHANGE,
}

_ORDER = "msg.full_order_info"
_LINE = ("oid", "item_id", "sku_id", "outer_sku_id", "outer_item_id", "title", "num", "price", "payment",
         "total_fee", "discount_price", "item_type", "sku_properties_name", "is_present", "alias", "pic_path",
         "goods_url", "points_price", "buyer_messages", "item_message", "is_cross_border", "sub_order_no",
         "cross_border_trade_mode", "customs_code", "fenxiao_price", "fenxiao_payment", "is_pre_sale")
KNOWN_FIELDS = frozenset(
    {"app_id", "client_id", "id", "kdt_id", "kdt_name", "root_kdt_id", "head_kdt_id", "mode", "msg", "msg_id",
     "sendCount", "sign", "status", "test", "type", "version"}
    | {f"msg.{f}" for f in ("tid", "oids", "update_time", "close_type", "close_reason", "express_id",
                            "refund_id", "refunded_fee", "refund_type", "refund_reason", "refund_reason_desc",
                            "version", "address", "full_order_info", "delivery_order", "order_promotion",
                            "refund_order")}
    | {f"msg.address.{f}" for f in ("delivery_province", "delivery_city", "delivery_district", "delivery_address",
                                    "delivery_postal_code", "receiver_name", "receiver_tel")}
    | {f"{_ORDER}.{f}" for f in ("orders", "pay_info", "address_info", "order_info", "buyer_info", "source_info",
                                 "remark_info", "child_info", "invoice_info")}
    | {f"{_ORDER}.orders[].{f}" for f in _LINE}
    | {f"{_ORDER}.pay_info.{f}" for f in ("payment", "total_fee", "post_fee", "real_payment", "transaction",
                                          "outer_transactions", "phase_payments", "deduction_pay",
                                          "deduction_real_pay", "deduct_value_card_pay", "deduct_gift_card_pay")}
    | {f"{_ORDER}.address_info.{f}" for f in ("receiver_name", "receiver_tel", "delivery_province",
                                              "delivery_city", "delivery_district", "delivery_address",
                                              "delivery_postal_code", "self_fetch_info", "address_extra")}
    | {f"{_ORDER}.order_info.{f}" for f in ("tid", "status", "status_str", "type", "created", "update_time",
                                            "pay_time", "consign_time", "confirm_time", "expired_time",
                                            "success_time", "close_type", "refund_state", "pay_type", "team_type",
                                            "express_type", "is_retail_order", "order_tags", "order_extra")}
)
# Subtrees the hub knows exist and does not read: their inner fields are not drift.
OPAQUE_FIELDS = tuple(f"{_ORDER}.{f}" for f in ("buyer_info", "source_info", "remark_info", "child_info",
                                                 "invoice_info", "order_info.order_tags", "order_info.order_extra",
                                                 "pay_info.phase_payments")) + (
    "msg.delivery_order", "msg.order_promotion", "msg.refund_order")


class YouzanChannel(Channel):
    name = "youzan"
    kept_headers = (SIGNATURE_HEADER, TYPE_HEADER, CLIENT_ID_HEADER)
    known_fields = KNOWN_FIELDS
    status_map = TRADE_STATUS
    topic_map = TOPICS

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        # No timestamp to check: Youzan signs none (see the module docstring on replays).
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise Unauthorized("missing Event-Sign")
        if not settings.app_key:
            raise Unauthorized("the hub has no Youzan client_id configured")
        client_id = request.headers.get(CLIENT_ID_HEADER)
        if client_id is not None and client_id != settings.app_key:
            raise Unauthorized("Client-Id is not the client_id this hub is configured for")
        expected = [sign(settings.app_key, secret, request.body) for secret in settings.secrets]
        if not constant_time_match(expected, signature.strip().lower()):
            raise Unauthorized("signature does not match")

    def prepare(self, payload: Any, rules: FieldRules) -> tuple[Any, tuple[str, ...]]:
        """The field rules, then drift. A full order has ~60 fields: the walk stops at known opaque
        subtrees and at the first unknown field of a branch (the only one worth reporting)."""
        if rules.drop or rules.rename:
            payload, _ = _RULES_ONLY.prepare(payload, rules)
        unknown = set(_unknown_paths(payload, _KNOWN_TREE, ""))
        if rules.ignore:
            unknown = {p for p in unknown if not any(p == i or p.startswith((i + ".", i + "[]")) for i in rules.ignore)}
        return payload, tuple(sorted(unknown))

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        try:
            push = loads_decimal(body)
        except (ValueError, UnicodeDecodeError):
            raise Malformed("body is not JSON") from None
        if not isinstance(push, dict):
            raise Malformed("body must be a JSON object")
        if push.get("test") is True or str(push.get("test")).lower() == "true":
            return []  # a test push: acknowledged, nothing to apply
        push, drift = self.prepare({**push, "msg": _decode_msg(push.get("msg"))}, rules)
        topic_name = push.get("type")
        if not isinstance(topic_name, str) or not topic_name:
            raise Malformed("type: required")
        msg = push["msg"]
        return [_normalise(push, topic_name, msg, drift)]

    def accepted(self) -> Reply:
        return Reply(200, '{"code":0,"msg":"success"}')

    def rejected(self, rejection: ChannelRejection) -> Reply:
        # Youzan reads any body containing "success" as delivered: a refusal must never contain it.
        reason = rejection.reason.replace("success", "succ-ess")
        return Reply(rejection.status_code, compact_json({"code": 1, "msg": reason}))


def _normalise(push: Mapping[str, Any], topic_name: str, msg: Mapping[str, Any],
               drift: tuple[str, ...]) -> OrderEvent:
    full: Mapping[str, Any] = _object(msg.get("full_order_info"))
    info: Mapping[str, Any] = _object(full.get("order_info"))
    topic = TOPICS.get(topic_name)
    gaps: list[str] = [] if topic else [f"type={topic_name}"]
    kinds = list(topic.kinds) if topic else []
    codes = [f"type={topic_name}"]
    hold: str | None = None

    is_trade = topic_name.startswith("trade_Trade")
    status = info.get("status") or (push.get("status") if is_trade else None)
    if isinstance(status, str) and status and status != "null":
        codes.append(f"status={status}")
        if status in TRADE_STATUS:
            kinds += [k for k in TRADE_STATUS[status][0] if k not in kinds]
            hold = TRADE_STATUS[status][1]
        else:
            gaps.append(f"status={status}")

    tid = info.get("tid") or msg.get("tid") or push.get("id")
    if not isinstance(tid, str | int) or isinstance(tid, bool) or not str(tid):
        raise Malformed("msg.tid: the order number is required")
    version = _version(push.get("version", msg.get("version")))
    msg_id = push.get("msg_id") or f"{push.get('kdt_id')}:{tid}"
    event: dict[str, Any] = {
        "channel": "youzan", "channel_order_id": str(tid), "shop_id": str(push.get("kdt_id") or ""),
        "event_id": f"{topic_name}:{version:016d}:{msg_id}"[:128], "drift": drift, "hold": hold,
        "event_time": _event_time(msg.get("update_time") or info.get("update_time"), version),
        "kinds": tuple(kinds),
    }
    # The full order says when each milestone happened; those times date them, not the message's.
    when = {kind: _beijing(info.get(field), f"order_info.{field}") for kind, field in _MILESTONE_FIELDS.items()
            if kind in kinds and info.get(field)}
    if when:
        event["milestone_times"] = when
    details = _details(full)
    if details is not None:
        event["details"] = details
    pay = full.get("pay_info")
    if status in _PAID and isinstance(pay, dict) and pay.get("payment") not in (None, ""):
        transactions = [t for t in pay.get("transaction") or [] if isinstance(t, str)]
        event["payment"] = {"amount": _fen(pay["payment"], "pay_info.payment"),
                            "transaction_id": transactions[0][:64] if transactions else "",
                            "method": f"pay_type={info['pay_type']}" if info.get("pay_type") is not None else ""}
    if topic is not None and topic.region:
        region = _region(msg.get("address"))
        if region is None:
            gaps.append("address: no province/city")
        else:
            event["region"] = region
    if topic is not None and topic.case is not None:
        event["aftersales"] = (_case(topic_name, topic.case, msg, gaps, codes),)
    event["gaps"], event["channel_code"] = tuple(gaps), ";".join(codes)[:200]
    try:
        return OrderEvent.model_validate(event)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        raise Malformed(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None


def _details(full: Mapping[str, Any]) -> dict[str, Any] | None:
    """The order's lines and total, when the message carries the full order (create, pay...)."""
    orders, pay = full.get("orders"), full.get("pay_info")
    if not isinstance(orders, list) or not orders or not isinstance(pay, dict):
        return None
    lines = []
    for i, line in enumerate(orders):
        if not isinstance(line, dict):
            raise Malformed(f"full_order_info.orders[{i}]: must be an object")
        sku_id = line.get("sku_id")
        sku = line.get("outer_sku_id") or line.get("outer_item_id") or (str(sku_id) if sku_id else "") \
            or str(line.get("item_id") or "")
        if not sku:
            raise Malformed(f"full_order_info.orders[{i}]: no outer_sku_id, sku_id or item_id")
        lines.append({"sku": str(sku), "name": str(line.get("title") or "")[:200],
                      "quantity": ascii_int(line.get("num"), f"full_order_info.orders[{i}].num", 6),
                      "unit_price": _fen(line.get("price"), f"orders[{i}].price")})
    return {"currency": "CNY", "total_amount": _fen(pay.get("payment"), "pay_info.payment"), "lines": lines,
            "region": _region(full.get("address_info")) or {}}


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _case(topic_name: str, state: AftersaleState, msg: Mapping[str, Any], gaps: list[str],
          codes: list[str]) -> dict[str, Any]:
    refund_id = msg.get("refund_id")
    if not isinstance(refund_id, str | int) or isinstance(refund_id, bool) or not str(refund_id):
        raise Malformed("msg.refund_id: required for refund messages")
    kind = msg.get("refund_type")
    case_type = AftersaleType.OTHER
    if kind not in (None, ""):
        codes.append(f"refund_type={kind}")
        if str(kind) in REFUND_TYPE:
            case_type = REFUND_TYPE[str(kind)]
        else:
            gaps.append(f"refund_type={kind}")
    fee = msg.get("refunded_fee")
    return {"case_id": str(refund_id), "state": state, "type": case_type,
            "amount": 0 if fee in (None, "") else _fen(fee, "msg.refunded_fee"),
            "reason": str(msg.get("refund_reason") or "")[:200], "channel_state": topic_name[:64]}


_ELEMENT = object()  # the tree's key for a list's elements (an object may have a key spelt "[]")


def _tree(paths: frozenset[str], opaque: tuple[str, ...]) -> dict[Any, Any]:
    """Known field paths as nested dicts (`_ELEMENT` is a list's element); an opaque subtree is None."""
    root: dict[Any, Any] = {}
    for path, leaf in [(p, {}) for p in paths] + [(p, None) for p in opaque]:
        node = root
        parts: list[Any] = [_ELEMENT if part == "[]" else part for part in path.replace("[]", ".[]").split(".")]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = leaf if leaf is None else node.get(parts[-1], leaf)
    return root


def _unknown_paths(value: Any, node: dict[Any, Any], prefix: str) -> list[str]:
    """The topmost payload paths the tree does not know (the same answer as `Channel.prepare`)."""
    found: list[str] = []
    _collect_unknown(value, node, prefix, found)
    return found


def _collect_unknown(value: Any, node: dict[Any, Any], prefix: str, found: list[str]) -> None:
    if isinstance(value, dict):
        if value.keys() <= node.keys():  # every key known (told in C): only objects and lists to look into
            for key, child in value.items():
                if type(child) not in _SCALARS:
                    known = node[key]
                    if known is not None and isinstance(child, (dict, list)):
                        _collect_unknown(child, known, f"{prefix}.{key}" if prefix else str(key), found)
            return
        get = node.get
        for key, child in value.items():
            known = get(key, _MISSING)
            if known is _MISSING:
                found.append(f"{prefix}.{key}" if prefix else str(key))
            elif known is not None and isinstance(child, (dict, list)):
                _collect_unknown(child, known, f"{prefix}.{key}" if prefix else str(key), found)
    elif isinstance(value, list):
        element = node.get(_ELEMENT, {})
        if element is not None:
            for child in value:
                if isinstance(child, (dict, list)):
                    _collect_unknown(child, element, prefix + "[]", found)


def url_decode(text: str) -> str:
    """Form URL decoding (`+` is a space), strict UTF-8. Well-formed input, which is all Youzan
    sends, is decoded in C by the quoted-printable decoder (`%XX` read as `=XX`): an order's `msg`
    is thousands of escapes, and `unquote_plus` decodes them one by one in Python (16x slower)."""
    if text.isascii() and not ("=" in text or "\r" in text or "\n" in text or "%" in text[-2:]):
        decoded = binascii.a2b_qp(text.replace("+", " ").replace("%", "="))
        # A malformed escape survives as "=", and "%%" ("==" to the decoder) comes out as "=": with no
        # "=" out there was neither (nor a "%3D"), which spares the slow searches of a text that is
        # mostly "%" (~9 us on an order). With one, more "=" out than "%3D" in means a malformed escape.
        if b"=" not in decoded or ("%%" not in text
                                   and decoded.count(b"=") == text.count("%3D") + text.count("%3d")):
            return decoded.decode("utf-8")
    return unquote_plus(text, encoding="utf-8", errors="strict")


def _decode_msg(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = loads_decimal(text if text.startswith("{") else url_decode(text))
        except Malformed as exc:
            raise Malformed(f"msg: not URL-encoded JSON we accept: {exc.reason}") from None
        except ValueError:  # not UTF-8 once decoded
            raise Malformed("msg: not URL-encoded JSON") from None
    if not isinstance(value, dict):
        raise Malformed("msg: required, a URL-encoded JSON object or an object")
    return value


def _version(value: Any) -> int:
    if isinstance(value, str) and ascii_digits(value) and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**16:
        return value
    if value is None:
        return 0
    raise Malformed("version: must be a non-negative integer")


def _beijing(value: Any, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise Malformed(f"{where}: not yyyy-MM-dd HH:mm:ss") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_BEIJING)


def _event_time(value: Any, version: int) -> datetime:
    """The message's own update time (Beijing); without one, `version`, which is a Unix time."""
    if isinstance(value, str) and value.strip():
        return _beijing(value, "update_time")
    if version >= 10**9:
        seconds, millis = divmod(version, 1000) if version >= 10**12 else (version, 0)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)
    raise Malformed("msg.update_time: required (and version is not a time either)")


def _fen(value: Any, where: str) -> int:
    """Yuan ("12.50", or a JSON number read as Decimal) -> fen, exactly."""
    try:
        fen = Decimal(str(value).strip()) * 100
    except (InvalidOperation, ValueError):
        raise Malformed(f"{where}: not an amount in yuan") from None
    if not fen.is_finite() or fen != fen.to_integral_value() or fen < 0:
        raise Malformed(f"{where}: not an amount in yuan with at most 2 decimals")
    return int(fen)


def _region(address: Any) -> dict[str, str] | None:
    """Province and city only; the receiver, phone and street are never read."""
    if not isinstance(address, dict):
        return None
    province, city = address.get("delivery_province"), address.get("delivery_city")
    if not (isinstance(province, str) and province and isinstance(city, str) and city):
        return None
    return {"province": province, "city": city}


def sign(client_id: str, client_secret: str, body: bytes) -> str:
    """`Event-Sign` of a push body: what Youzan sends and what the hub recomputes."""
    return hashlib.md5(client_id.encode() + body + client_secret.encode(), usedforsecurity=False).hexdigest()


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What Youzan sends: the body as is, with Event-Sign, Event-Type and Client-Id."""
    sent = {k.lower(): v for k, v in headers.items()}
    if TYPE_HEADER not in sent:
        try:
            sent[TYPE_HEADER] = str(json.loads(payload).get("type", ""))
        except (ValueError, AttributeError):
            sent[TYPE_HEADER] = ""
    return ({**sent, "content-type": "application/json", CLIENT_ID_HEADER: app_key,
             SIGNATURE_HEADER: sign(app_key, secret, payload)}, payload)


_RULES_ONLY = Channel()  # knows no fields: its `prepare` applies drop and rename rules only
_MISSING = object()
_SCALARS = frozenset({str, int, float, bool, type(None), Decimal})
_KNOWN_TREE = _tree(KNOWN_FIELDS, OPAQUE_FIELDS)
CHANNEL = YouzanChannel()
