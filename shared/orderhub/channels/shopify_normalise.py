"""`shopify` normalisation: the mapping tables, and a payload read into the facts of one event.

The delivery contract, and what each status, refund and money field means, is in the docstring
of `orderhub.channels.shopify`, which authenticates a webhook, picks the payload type from its
topic, lists drift, and hands the payload here. Each `*_event` function takes the event dict the
channel started (channel, shop, event id, drift) and returns it with the order key, the
channel's code, the event time, milestones, gaps and the snapshots the payload carries. A code
missing from a table is a gap, never guessed.

`to_minor` and `CURRENCY_EXPONENT` are shared with the woocommerce module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NamedTuple

from orderhub.channels.base import Malformed
from orderhub.channels.values import ascii_digits
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, EventKind

_C, _D, _P, _S, _U, _V, _X = (EventKind.CREATED, EventKind.DEPOSIT_PAID, EventKind.PAID, EventKind.SHIP_REQUESTED,
                              EventKind.PICKED_UP, EventKind.DELIVERED, EventKind.CANCELLED)


class Row(NamedTuple):
    """What a code says: the milestones it implies and the hold snapshot ("" = not held, None = silent)."""

    kinds: tuple[EventKind, ...]
    hold: str | None


# financial_status (REST Order; `expired` is GraphQL's EXPIRED, seen on expired authorizations).
# An authorization secures the money and is what merchants with manual capture fulfil against,
# so it counts as paid; an authorization voided or expired while the order stands is a hold.
FINANCIAL_STATUS: Mapping[str | None, Row] = {
    None: Row((_C,), None),  # not stated (include_fields subsets)
    "pending": Row((_C,), ""),  # awaiting payment (manual methods, bank deposit, COD)
    "authorized": Row((_C, _P), ""),  # authorized, to be captured
    "partially_paid": Row((_C, _D), ""),  # part paid (deposit / payment terms): balance due
    "paid": Row((_C, _P), ""),
    "partially_refunded": Row((_C, _P), ""),  # the refunds themselves are after-sale cases
    "refunded": Row((_C, _P), ""),
    "voided": Row((_C,), "payment voided"),
    "expired": Row((_C,), "payment authorization expired"),
}

# fulfillment_status of the order: null = nothing fulfilled; `restocked` = every item restocked
# (the order was cancelled: that is cancelled_at's to say).
FULFILLMENT_STATUS: Mapping[str | None, tuple[EventKind, ...]] = {
    None: (),
    "unfulfilled": (),
    "partial": (_S,),
    "fulfilled": (_S,),
    "restocked": (),
}

# cancel_reason (OrderCancelReason). Every reason cancels; cancelled_at is the fact itself.
CANCEL_REASON: Mapping[str | None, tuple[EventKind, ...]] = {
    None: (_X,),
    "customer": (_X,),
    "declined": (_X,),  # payment declined
    "fraud": (_X,),
    "inventory": (_X,),
    "other": (_X,),
    "staff": (_X,),  # staff error
}

# status of a fulfillment: `success` is the merchant (or their app) marking the goods shipped.
FULFILLMENT_RECORD_STATUS: Mapping[str, tuple[EventKind, ...]] = {
    "pending": (),
    "open": (),
    "success": (_S,),
    "cancelled": (),
    "error": (),
    "failure": (),
}

# shipment_status of a fulfillment: the carrier's tracking as Shopify relays it.
SHIPMENT_STATUS: Mapping[str | None, tuple[EventKind, ...]] = {
    None: (),
    "label_printed": (),
    "label_purchased": (),
    "confirmed": (),
    "ready_for_pickup": (),
    "attempted_delivery": (_U,),
    "in_transit": (_U,),
    "out_for_delivery": (_U,),
    "delivered": (_U, _V),
    "failure": (),
}

# status of a refund's `kind: refund` transactions -> the refund case's state.
REFUND_TRANSACTION_STATUS: Mapping[str, AftersaleState] = {
    "success": AftersaleState.REFUNDED,
    "pending": AftersaleState.REFUNDING,
    "failure": AftersaleState.FAILED,
    "error": AftersaleState.FAILED,
}

# ISO 4217 minor-unit exponents that are not 2 (shared with the woocommerce module).
CURRENCY_EXPONENT: Mapping[str, int] = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}


# Normalisation -------------------------------------------------------------------------------


def order_event(order: Mapping[str, Any], topic: str, event: dict[str, Any]) -> dict[str, Any]:
    currency = _currency(order.get("currency"), "currency")
    financial, fulfillment = order.get("financial_status"), order.get("fulfillment_status")
    kinds: list[EventKind] = []
    gaps: list[str] = []
    hold: str | None = None
    row = FINANCIAL_STATUS.get(financial) if _code(financial) else None
    if row is None:
        gaps.append(f"financial_status={financial}")
    else:
        kinds += row.kinds
        hold = row.hold
    shipped = FULFILLMENT_STATUS.get(fulfillment) if _code(fulfillment) else None
    if shipped is None:
        gaps.append(f"fulfillment_status={fulfillment}")
    else:
        kinds += shipped
    code = f"{topic} financial_status={financial} fulfillment_status={fulfillment}"
    if order.get("cancelled_at"):
        reason = order.get("cancel_reason")
        code += f" cancel_reason={reason}"
        kinds.append(_X)  # cancelled_at is the fact; the reason only explains it
        if not _code(reason) or reason not in CANCEL_REASON:
            gaps.append(f"cancel_reason={reason}")
    fulfillments = _objects(order.get("fulfillments"), "fulfillments")
    for record in fulfillments:
        kinds += _fulfillment_kinds(record, gaps)
    event |= {"channel_order_id": _id(order.get("id"), "id"), "channel_code": code[:200],
              "event_time": _time(order.get("updated_at"), "updated_at"),
              "kinds": tuple(dict.fromkeys(kinds)), "gaps": tuple(dict.fromkeys(gaps)), "hold": hold}
    total = to_minor(order.get("total_price"), currency, "total_price")
    lines = _lines(order.get("line_items"), currency)
    if lines:
        address = order.get("shipping_address")
        event["details"] = {"currency": currency, "total_amount": total, "lines": lines, "region": _region(address)}
    gateway = _gateway(order.get("payment_gateway_names"))
    if _P in kinds:
        event["payment"] = {"amount": total, "method": gateway}
    if _D in kinds:
        outstanding = to_minor(order.get("total_outstanding") or 0, currency, "total_outstanding")
        event["deposit"] = {"amount": max(total - outstanding, 0), "method": gateway}
    shipment = _shipment(fulfillments)
    if shipment:
        event["shipment"] = shipment
    cases = []
    for refund in _objects(order.get("refunds"), "refunds"):
        case = _refund_case(refund, currency, gaps)
        if case:
            cases.append(case)
    event["aftersales"] = tuple(cases)
    event["gaps"] = tuple(dict.fromkeys(gaps))
    return event


def refund_event(refund: Mapping[str, Any], topic: str, event: dict[str, Any]) -> dict[str, Any]:
    # The refund payload does not name the order's currency; every MoneyBag in it does.
    duties = refund.get("total_duties_set")
    shop = duties.get("shop_money") if isinstance(duties, Mapping) else None
    currency = shop.get("currency_code") if isinstance(shop, Mapping) else None
    gaps: list[str] = []
    case = _refund_case(refund, currency, gaps)
    return event | {"channel_order_id": _id(refund.get("order_id"), "order_id"), "channel_code": topic,
                    "event_time": _time(refund.get("created_at"), "created_at"),
                    "aftersales": (case,) if case else (), "gaps": tuple(gaps)}


def fulfillment_event(record: Mapping[str, Any], topic: str, event: dict[str, Any]) -> dict[str, Any]:
    gaps: list[str] = []
    kinds = _fulfillment_kinds(record, gaps)
    event |= {"channel_order_id": _id(record.get("order_id"), "order_id"),
              "channel_code": f"{topic} status={record.get('status')} shipment_status={record.get('shipment_status')}",
              "event_time": _time(record.get("updated_at") or record.get("created_at"), "updated_at"),
              "kinds": tuple(dict.fromkeys(kinds)), "gaps": tuple(gaps)}
    shipment = _shipment([record])
    if shipment:
        event["shipment"] = shipment
    return event


def unmapped_event(payload: Mapping[str, Any], topic: str, triggered_at: str | None,
                   event: dict[str, Any]) -> dict[str, Any]:
    """An orders/* topic the table does not know: logged as a gap, nothing applied.

    `triggered_at` (X-Shopify-Triggered-At) is the event time when the payload states none.
    """
    stamp = payload.get("updated_at") or payload.get("created_at") or triggered_at
    order_id = payload.get("order_id", payload.get("id"))
    return event | {"channel_order_id": _id(order_id, "id"), "channel_code": topic,
                    "event_time": _time(stamp, "updated_at"), "gaps": (f"topic={topic}",)}


def _fulfillment_kinds(record: Mapping[str, Any], gaps: list[str]) -> list[EventKind]:
    kinds: list[EventKind] = []
    status, tracking = record.get("status"), record.get("shipment_status")
    mapped = FULFILLMENT_RECORD_STATUS.get(status) if _code(status) and status is not None else None
    if mapped is None:
        gaps.append(f"fulfillment.status={status}")
    elif status != "cancelled":
        kinds += mapped
        carrier = SHIPMENT_STATUS.get(tracking) if _code(tracking) else None
        if carrier is None:
            gaps.append(f"shipment_status={tracking}")
        else:
            kinds += carrier
    return kinds


def _shipment(fulfillments: Iterable[Mapping[str, Any]]) -> dict[str, str] | None:
    """The waybill of the latest live fulfillment that has one."""
    live = [f for f in fulfillments if f.get("status") in ("success", "open", "pending")
            and isinstance(f.get("tracking_number"), str) and f["tracking_number"].strip()]
    if not live:
        return None
    latest = max(live, key=lambda f: (str(f.get("created_at") or ""), str(f.get("id") or "")))
    carrier = latest.get("tracking_company")
    carrier = carrier.strip() if isinstance(carrier, str) and carrier.strip() else "Other"
    return {"carrier": carrier[:32], "tracking_no": latest["tracking_number"].strip()[:64]}


def _refund_case(refund: Mapping[str, Any], currency: str | None, gaps: list[str]) -> dict[str, Any] | None:
    """One refund as an after-sale case: REFUNDED by its successful refund transactions."""
    case_id = _id(refund.get("id"), "refund id")
    transactions = [t for t in _objects(refund.get("transactions"), "transactions") if t.get("kind") == "refund"]
    by_state: dict[AftersaleState, list[Mapping[str, Any]]] = {}
    for transaction in transactions:
        status = transaction.get("status")
        state = REFUND_TRANSACTION_STATUS.get(status) if isinstance(status, str) else None
        if state is None:
            gaps.append(f"transaction.status={status}")
            continue
        by_state.setdefault(state, []).append(transaction)
    for state in (AftersaleState.REFUNDED, AftersaleState.REFUNDING, AftersaleState.FAILED):
        if state in by_state:
            break
    else:
        return None  # no money moved (a restock-only refund): not a money case
    counted = by_state[state] if state is not AftersaleState.FAILED else []
    foreign = {t.get("currency") for t in counted} - {None, currency}
    if currency and foreign:
        # Paid in the presentment currency: state the amount in the shop currency from the refund's parts.
        gaps.append(f"refund_currency={','.join(sorted(str(c) for c in foreign))}")
        amount = _shop_money_parts(refund, currency)
    else:
        amount = sum(to_minor(t.get("amount"), currency or str(t.get("currency") or ""), "transactions[].amount")
                     for t in counted)
    returned = any(isinstance(item, Mapping) and item.get("restock_type") == "return"
                   for item in _objects(refund.get("refund_line_items"), "refund_line_items"))
    note = refund.get("note")
    return {"case_id": case_id, "state": state, "amount": amount,
            "type": AftersaleType.RETURN_REFUND if returned else AftersaleType.REFUND_ONLY,
            "reason": note[:200] if isinstance(note, str) else "", "channel_state": f"refund {state.value.lower()}"}


def _shop_money_parts(refund: Mapping[str, Any], currency: str) -> int:
    total = 0
    for item in _objects(refund.get("refund_line_items"), "refund_line_items"):
        total += _shop_money(item.get("subtotal_set"), currency) + _shop_money(item.get("total_tax_set"), currency)
    for line in _objects(refund.get("refund_shipping_lines"), "refund_shipping_lines"):
        total += (_shop_money(line.get("subtotal_amount_set"), currency)
                  + _shop_money(line.get("tax_amount_set"), currency))
    return total


def _shop_money(bag: Any, currency: str) -> int:
    money = bag.get("shop_money") if isinstance(bag, Mapping) else None
    if not isinstance(money, Mapping):
        return 0
    return to_minor(money.get("amount"), currency, "shop_money.amount")


def _lines(items: Any, currency: str) -> list[dict[str, Any]]:
    lines = []
    for item in _objects(items, "line_items"):
        quantity = item.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise Malformed("line_items[].quantity: a whole number is required")
        if quantity == 0:
            continue
        sku = item.get("sku")
        sku = sku.strip() if isinstance(sku, str) else ""
        if not sku:  # many Shopify products carry no SKU: the variant is the stock unit
            variant = item.get("variant_id") or item.get("id")
            sku = f"variant-{variant}" if variant else "unknown"
        name = item.get("name") or item.get("title") or ""
        lines.append({"sku": sku[:64], "name": str(name)[:200], "quantity": quantity,
                      "unit_price": to_minor(item.get("price"), currency, "line_items[].price")})
    return lines


def _region(address: Any) -> dict[str, str]:
    if not isinstance(address, Mapping):
        return {"province": "", "city": ""}
    return {"province": _text(address.get("province")), "city": _text(address.get("city"))}


def _gateway(names: Any) -> str:
    if isinstance(names, list) and names and isinstance(names[0], str):
        return names[0][:64]
    return ""


# Reading values ------------------------------------------------------------------------------


# A plain amount string: at most 24 + 4 digits, within Decimal's 28, so its digits are the exact result.
_PLAIN_AMOUNT = re.compile(r"([0-9]{1,24})(?:\.([0-9]{1,4}))?")


def to_minor(value: Any, currency: str, where: str, *, exact: bool = True) -> int:
    """A decimal amount ("12.50", 12.5 read as Decimal, 1500) in the currency's minor units."""
    if type(value) is str:
        # "12.50" with no more decimals than the currency has: the digits, without Decimal arithmetic
        plain = _PLAIN_AMOUNT.fullmatch(value.strip())
        if plain is not None:
            whole, fraction = plain.groups()
            exponent = CURRENCY_EXPONENT.get(currency, 2)
            if fraction is None:
                return int(whole) * 10**exponent
            if len(fraction) <= exponent:
                return int(whole) * 10**exponent + int(fraction) * 10 ** (exponent - len(fraction))
    return to_minor_by_decimal(value, currency, where, exact=exact)


def to_minor_by_decimal(value: Any, currency: str, where: str, *, exact: bool = True) -> int:
    """`to_minor` by Decimal arithmetic alone: the general path, and the reference its fast path is tested against."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise Malformed(f"{where}: a decimal amount is required")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise Malformed(f"{where}: not a decimal amount") from None
    if not amount.is_finite():
        raise Malformed(f"{where}: not a decimal amount")
    scaled = amount.scaleb(CURRENCY_EXPONENT.get(currency, 2))
    if exact and scaled != scaled.to_integral_value():
        raise Malformed(f"{where}: more decimals than {currency} has")
    return int(scaled.to_integral_value(rounding=ROUND_HALF_UP))


def _currency(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha() or not value.isupper():
        raise Malformed(f"{where}: an ISO 4217 currency code is required")
    return value


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not ascii_digits(str(value)):
        raise Malformed(f"{where}: a numeric id is required")
    text = str(value)
    if len(text) > 30:
        raise Malformed(f"{where}: a numeric id is required")
    return text


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise Malformed(f"{where}: an ISO 8601 time is required")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{where}: not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise Malformed(f"{where}: the time must carry a UTC offset")
    return parsed


def _code(value: Any) -> bool:
    """Whether a status value can be looked up (a string or null, not a number or object)."""
    return value is None or isinstance(value, str)


def _objects(value: Any, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    # Plain dicts (what JSON gives) told in C; anything else asks the Mapping ABC, element by element
    if not isinstance(value, list) or not (_DICT.issuperset(map(type, value))
                                           or all(isinstance(v, Mapping) for v in value)):
        raise Malformed(f"{where}: a list of objects is required")
    return value


_DICT = frozenset({dict})


def _text(value: Any) -> str:
    return value.strip()[:64] if isinstance(value, str) else ""
