"""`taobao`: Taobao and Tmall orders, pulled from the Taobao Open Platform (TOP).

Contract (events/taobao/README.md has it in brief with samples):
- Nothing is pushed: `channel_poller` calls `taobao.trades.sold.increment.get` every 5 minutes
  (`orderhub.pull.taobao`), one window of `start_modified`..`end_modified` at a time (at most one
  day apart, "yyyy-MM-dd HH:mm:ss" in Asia/Shanghai), `page_no`/`page_size` <= 100,
  `use_has_next=true`. Results come newest `modified` first. [TOP apiId=128; bububa/opentaobao
  model/trade/TaobaoTradesSoldIncrementGetAPIRequest.go]
- The call names the fields it wants; this module's `REQUESTED_FIELDS` are all the hub reads.
  Receiver name, phone and address are never requested: only `receiver_state`/`receiver_city`
  (and `receiver_district`, which TOP fills instead of the city for county-level cities).
- One order document is one `Trade` as TOP returns it in JSON: `tid` (a 64-bit number: `tid_str`
  is read first), `status`, `step_trade_status`/`step_paid_fee` (presale), `created`, `pay_time`,
  `consign_time`, `end_time`, `modified` (times "yyyy-MM-dd HH:mm:ss", Asia/Shanghai), `payment`,
  `total_fee`, `post_fee` (yuan strings such as "200.07"; converted to fen with Decimal), and
  `orders.order[]` (`oid`, `outer_sku_id`, `title`, `num`, `price`, `payment`, `divide_order_fee`,
  `refund_id`, `refund_status`, `status`, `logistics_company`, `invoice_no`).
  [bububa/opentaobao model/trade/Trade.go, Order.go]
- A snapshot is one event: `event_id` = tid + `modified` (a re-fetch of an unchanged order is a
  duplicate), `event_time` = `modified`. Its `status` implies every milestone before it
  (TRADE_FINISHED fetched for the first time still says created, paid, ship requested, completed).
  Cash-on-delivery trades (`type` cod) are paid when signed for. Presale (`step_trade_status`)
  decides the payment milestones: deposit only is DEPOSIT_PAID with
  the `deposit` fact (ST-8). Each sub-order's `refund_status` is an after-sale case keyed by
  `refund_id`; the trade carries no refund amount, so a case's amount is the sub-order's paid
  amount (`divide_order_fee`, else `payment`).
- Status codes: TRADE_NO_CREATE_PAY, WAIT_BUYER_PAY, PAY_PENDING, WAIT_PRE_AUTH_CONFIRM,
  PAID_FORBID_CONSIGN, WAIT_SELLER_SEND_GOODS, SELLER_CONSIGNED_PART, WAIT_BUYER_CONFIRM_GOODS,
  TRADE_BUYER_SIGNED, TRADE_FINISHED, TRADE_CLOSED, TRADE_CLOSED_BY_TAOBAO (Trade.go);
  refund codes WAIT_SELLER_AGREE, WAIT_BUYER_RETURN_GOODS, WAIT_SELLER_CONFIRM_GOODS,
  SELLER_REFUSE_BUYER, CLOSED, SUCCESS, NO_REFUND (Order.go).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
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
    loads_decimal,
    strptime_ymd_hms,
    ymdhms,
)
from orderhub.channels.values import ascii_digits
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, EventKind
from orderhub.models.order import OrderEvent

CST = timezone(timedelta(hours=8), "Asia/Shanghai")  # no DST in China since 1991
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

E = EventKind
_KIND_ORDER = tuple(EventKind)  # milestone order (iterating the enum class is a Python generator)
PAID_ONWARD = (E.CREATED, E.PAID)

# trade.status -> (milestones the snapshot implies, hold). Hold "" = not held.
STATUS_MAP: Mapping[str, tuple[tuple[EventKind, ...], str]] = {
    "TRADE_NO_CREATE_PAY": ((E.CREATED,), ""),  # no Alipay trade created yet
    "WAIT_BUYER_PAY": ((E.CREATED,), ""),
    "PAY_PENDING": ((E.CREATED,), ""),  # foreign card payment being confirmed
    "WAIT_PRE_AUTH_CONFIRM": ((E.CREATED,), ""),  # 0-yuan purchase contract: nothing paid yet
    "PAID_FORBID_CONSIGN": (PAID_ONWARD, "paid, shipping forbidden by the platform (group buy or control)"),
    "WAIT_SELLER_SEND_GOODS": (PAID_ONWARD, ""),
    "SELLER_CONSIGNED_PART": ((*PAID_ONWARD, E.SHIP_REQUESTED), ""),
    "WAIT_BUYER_CONFIRM_GOODS": ((*PAID_ONWARD, E.SHIP_REQUESTED), ""),
    "TRADE_BUYER_SIGNED": ((*PAID_ONWARD, E.SHIP_REQUESTED, E.DELIVERED), ""),  # cash on delivery, signed
    "TRADE_FINISHED": ((*PAID_ONWARD, E.SHIP_REQUESTED, E.COMPLETED), ""),
    "TRADE_CLOSED": ((*PAID_ONWARD, E.CANCELLED), ""),  # closed after payment: refunded in full
    "TRADE_CLOSED_BY_TAOBAO": ((E.CREATED, E.CANCELLED), ""),  # closed before payment
}

# Presale (step trades): the step status alone decides the payment milestones.
STEP_MAP: Mapping[str, tuple[EventKind, ...]] = {
    "FRONT_NOPAID_FINAL_NOPAID": (),
    "FRONT_PAID_FINAL_NOPAID": (E.DEPOSIT_PAID,),
    "FRONT_PAID_FINAL_PAID": (E.DEPOSIT_PAID, E.PAID),
}
PAYMENT_KINDS = frozenset({E.DEPOSIT_PAID, E.PAID})

# trade.type -> the statuses in which such a trade is paid (cash on delivery: paid on signing).
PAID_ONLY_IN: Mapping[str, frozenset[str]] = {
    "cod": frozenset({"TRADE_BUYER_SIGNED", "TRADE_FINISHED"}),
}

# orders.order[].refund_status -> the after-sale case it reports (None: no case).
REFUND_MAP: Mapping[str, tuple[AftersaleState, AftersaleType] | None] = {
    "NO_REFUND": None,
    "WAIT_SELLER_AGREE": (AftersaleState.REQUESTED, AftersaleType.REFUND_ONLY),
    "WAIT_BUYER_RETURN_GOODS": (AftersaleState.AWAITING_RETURN, AftersaleType.RETURN_REFUND),
    "WAIT_SELLER_CONFIRM_GOODS": (AftersaleState.RETURN_SHIPPED, AftersaleType.RETURN_REFUND),
    "SELLER_REFUSE_BUYER": (AftersaleState.REJECTED, AftersaleType.REFUND_ONLY),
    "CLOSED": (AftersaleState.CANCELLED, AftersaleType.REFUND_ONLY),
    "SUCCESS": (AftersaleState.REFUNDED, AftersaleType.REFUND_ONLY),
}

# What the poller asks `taobao.trades.sold.increment.get` for (`fields`): all the hub reads.
REQUESTED_FIELDS: tuple[str, ...] = (
    "tid", "tid_str", "status", "type", "step_trade_status", "step_paid_fee", "seller_nick",
    "created", "pay_time", "consign_time", "end_time", "modified", "payment", "total_fee", "post_fee",
    "discount_fee", "alipay_no", "receiver_state", "receiver_city", "receiver_district", "orders",
)
# Sub-order fields TOP returns with `orders` (all of them: the hub reads a few, the rest are known).
ORDER_FIELDS: tuple[str, ...] = (
    "oid", "oid_str", "status", "title", "price", "num", "num_iid", "sku_id", "outer_iid", "outer_sku_id",
    "total_fee", "payment", "discount_fee", "adjust_fee", "divide_order_fee", "part_mjz_discount",
    "refund_id", "refund_status", "sku_properties_name", "pic_path", "snapshot_url", "seller_type", "cid",
    "buyer_rate", "seller_rate", "consign_time", "end_time", "shipping_type", "logistics_company", "invoice_no",
    "timeout_action_time", "order_from", "is_oversold", "is_daixiao", "is_www", "store_code", "item_meal_id",
    "item_meal_name", "special_refund_type", "customization", "bind_oids", "is_idle",
)
# Trade fields TOP may return beside the requested ones (personal data among them: known, never read).
OTHER_TRADE_FIELDS: tuple[str, ...] = (
    "buyer_nick", "buyer_open_uid", "receiver_name", "receiver_address", "receiver_mobile", "receiver_phone",
    "receiver_zip", "receiver_town", "receiver_country", "buyer_message", "buyer_memo", "seller_memo",
    "seller_flag", "buyer_flag", "title", "num", "num_iid", "price", "shipping_type", "trade_from",
    "received_payment", "adjust_fee", "has_post_fee", "promotion_details", "service_orders", "est_con_time",
)


# Milestone -> the trade field that says when it happened.
MILESTONE_FIELDS: dict[EventKind, str] = {E.CREATED: "created", E.PAID: "pay_time", E.SHIP_REQUESTED: "consign_time",
                                          E.COMPLETED: "end_time"}


def _known_fields() -> frozenset[str]:
    paths = set(REQUESTED_FIELDS) | set(OTHER_TRADE_FIELDS) | {"orders.order"}
    paths |= {f"orders.order[].{f}" for f in ORDER_FIELDS}
    return frozenset(paths)


class TaobaoChannel(Channel):
    name = "taobao"
    push = False
    known_fields = _known_fields()
    status_map = STATUS_MAP
    step_map = STEP_MAP
    refund_map = REFUND_MAP
    paid_only_in = PAID_ONLY_IN

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        raise Unauthorized("taobao orders are pulled from TOP, not pushed to the hub")

    def accepted(self) -> Reply:
        return Reply(404, "")  # never sent: there is no webhook to acknowledge

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        trade, drift = self.prepare(load_document(body), rules)
        try:
            return [self._normalise(trade, drift)]
        except ValidationError as exc:
            raise Malformed(describe(exc)) from None

    def _normalise(self, trade: Mapping[str, Any], drift: tuple[str, ...]) -> OrderEvent:
        tid = _tid(trade)
        modified = required_time(trade, "modified")
        status = text(trade, "status")
        step = text(trade, "step_trade_status")
        gaps: list[str] = []
        codes = [f"status={status}"]

        mapped = self.status_map.get(status)
        kinds: tuple[EventKind, ...] = ()
        hold: str | None = None
        if mapped is None:
            gaps.append(f"status={status}")
        else:
            kinds, hold = mapped
            paid_states = self.paid_only_in.get(text(trade, "type"))
            if paid_states is not None and status not in paid_states:
                kinds = tuple(k for k in kinds if k is not E.PAID)
        if step:
            codes.append(f"step_trade_status={step}")
            step_kinds = self.step_map.get(step)
            if step_kinds is None:
                gaps.append(f"step_trade_status={step}")
                step_kinds = ()
            if mapped is not None:
                kinds = tuple(k for k in kinds if k not in PAYMENT_KINDS) + step_kinds
                kinds = tuple(k for k in _KIND_ORDER if k in kinds)  # milestone order

        event: dict[str, Any] = {
            "channel": self.name, "channel_order_id": tid, "shop_id": text(trade, "seller_nick"),
            "event_id": f"{tid}@{ymdhms(modified)}", "event_time": modified,
            "channel_code": "; ".join(codes), "kinds": kinds, "drift": drift, "hold": hold,
            "milestone_times": milestone_times(trade, MILESTONE_FIELDS, kinds),
        }
        lines, shipment, cases = self._sub_orders(trade, modified, gaps)
        if lines:
            event["details"] = {"currency": "CNY", "total_amount": fen(trade, "payment"), "lines": lines,
                                "region": {"province": text(trade, "receiver_state"),
                                           "city": text(trade, "receiver_city") or text(trade, "receiver_district")}}
        if E.PAID in kinds and trade.get("payment") not in (None, ""):
            event["payment"] = {"transaction_id": text(trade, "alipay_no"), "amount": fen(trade, "payment"),
                                "method": "alipay"}
        if E.DEPOSIT_PAID in kinds and E.PAID not in kinds and trade.get("step_paid_fee") not in (None, ""):
            event["deposit"] = {"amount": fen(trade, "step_paid_fee"), "method": "alipay"}
        if shipment:
            event["shipment"] = shipment
        event["aftersales"] = cases
        event["gaps"] = tuple(gaps)
        return OrderEvent.model_validate(event)

    def _sub_orders(self, trade: Mapping[str, Any], modified: datetime,
                    gaps: list[str]) -> tuple[list[dict], dict | None, list[dict]]:
        holder = trade.get("orders")
        if holder is None:
            return [], None, []
        items = holder.get("order") if isinstance(holder, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise Malformed("orders.order must be a list of sub-orders")
        lines, cases, shipment = [], [], None
        for index, item in enumerate(items):
            where = f"orders.order[{index}]"
            oid = ident(item, "oid_str", "oid", where=where)
            sku = text(item, "outer_sku_id") or text(item, "outer_iid") or text(item, "sku_id") or oid
            lines.append({"sku": sku[:64], "name": text(item, "title")[:200],
                          "quantity": count(item, "num", where), "unit_price": fen(item, "price", where)})
            if shipment is None and text(item, "invoice_no") and text(item, "logistics_company"):
                shipment = {"carrier": text(item, "logistics_company")[:32], "tracking_no": text(item, "invoice_no")}
            refund = text(item, "refund_status")
            if not refund:
                continue
            if refund not in self.refund_map:
                gaps.append(f"refund_status={refund}")
                continue
            meaning = self.refund_map[refund]
            if meaning is None:
                continue
            state, kind = meaning
            paid_field = "divide_order_fee" if item.get("divide_order_fee") not in (None, "") else "payment"
            cases.append({"case_id": text(item, "refund_id") or f"oid-{oid}", "state": state, "type": kind,
                          "amount": fen(item, paid_field, where) if item.get(paid_field) not in (None, "") else 0,
                          "channel_state": refund})
        return lines, shipment, cases


# Reading platform documents (shared by the pulled Chinese platforms: taobao, jd, pdd) ------


def load_document(body: bytes) -> dict[str, Any]:
    """The order document; JSON numbers with a fraction become Decimal, never float."""
    try:
        value = loads_decimal(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("body is not JSON") from None
    if not isinstance(value, dict):
        raise Malformed("body must be one order object")
    return value


def text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if type(value) is str:  # the usual case, first: this runs ~10 times per document
        return value
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise Malformed(f"{key} must be a string")
    return str(value)


def ident(doc: Mapping[str, Any], *keys: str, where: str = "") -> str:
    """A platform id: the string form first (ids are 64-bit, floats would corrupt them)."""
    for key in keys:
        value = doc.get(key)
        if isinstance(value, str) and value.strip():
            if not ascii_digits(value) or len(value) > 32:
                raise Malformed(f"{_at(where, key)} must be digits")
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return str(value)
        if isinstance(value, Decimal):
            raise Malformed(f"{_at(where, key)} is not an integer (use the *_str form)")
    raise Malformed(f"missing {_at(where, keys[-1])}")


def _tid(trade: Mapping[str, Any]) -> str:
    return ident(trade, "tid_str", "tid")


# Yuan as platforms spell it ("12.50", "0.5", "199"): read without Decimal; anything else takes the Decimal path.
_PLAIN_YUAN = re.compile(r"([0-9]{1,24})(?:\.([0-9]{1,2}))?")  # within Decimal's 28 digits: the same result


def fen(doc: Mapping[str, Any], key: str, where: str = "") -> int:
    """Yuan (a string like "12.50", or a JSON number read as Decimal) to integer fen."""
    value = doc.get(key)
    if type(value) is str:
        if (plain := _PLAIN_YUAN.fullmatch(value)) is not None:
            yuan, cents = plain.groups()
            return int(yuan) * 100 + (int(cents.ljust(2, "0")) if cents else 0)
    elif type(value) is int and 0 <= value < 10**24:  # beyond Decimal's 28 digits the Decimal path rounds
        return value * 100
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise Malformed(f"{_at(where, key)} must be an amount in yuan")
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise Malformed(f"{_at(where, key)} is not an amount in yuan") from None
    cents = amount * 100
    if not amount.is_finite() or amount < 0 or cents != cents.to_integral_value():
        raise Malformed(f"{_at(where, key)} must be a non-negative amount with at most 2 decimals")
    return int(cents)


def count(doc: Mapping[str, Any], key: str, where: str = "") -> int:
    value = doc.get(key)
    if isinstance(value, str) and ascii_digits(value) and len(value) <= 20:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Malformed(f"{_at(where, key)} must be a positive integer")
    return value


def milestone_times(doc: Mapping[str, Any], fields: Mapping[EventKind, str],
                    kinds: tuple[EventKind, ...]) -> dict[EventKind, datetime]:
    """When the snapshot says each of its milestones happened (pay_time, consign_time...), so the
    traceback shows the platform's times rather than when the hub happened to poll."""
    out = {}
    for kind, key in fields.items():
        if kind in kinds and (at := cst_time(doc, key)) is not None:
            out[kind] = at
    return out


def cst_time(doc: Mapping[str, Any], key: str, where: str = "") -> datetime | None:
    """A platform time ("yyyy-MM-dd HH:mm:ss", Beijing time); None when absent."""
    value = doc.get(key)
    if value in (None, "", "0001-01-01 00:00:00", "1970-01-01 08:00:00"):
        return None
    if not isinstance(value, str):
        raise Malformed(f"{_at(where, key)} must be yyyy-MM-dd HH:mm:ss")
    try:
        return strptime_ymd_hms(value).replace(tzinfo=CST)  # TIME_FORMAT
    except ValueError:
        raise Malformed(f"{_at(where, key)} must be yyyy-MM-dd HH:mm:ss") from None


def required_time(doc: Mapping[str, Any], key: str) -> datetime:
    at = cst_time(doc, key)
    if at is None:
        raise Malformed(f"missing {key}")
    return at


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def describe(exc: ValidationError) -> str:
    """First few validation problems as `field: message`, without echoing input values."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What the platform's API hands the hub for one order: the document as returned, unchanged.

    Pulled channels (taobao, jd, pdd) are not signed by the platform: the hub signs its own calls
    (`orderhub.pull.<channel>`). The document is exactly what `parse` takes.
    """
    return {**{k.lower(): v for k, v in headers.items()}, "content-type": "application/json;charset=UTF-8"}, payload


CHANNEL = TaobaoChannel()
