"""`woocommerce`: WooCommerce webhooks (REST API v3 order payloads), as `WC_Webhook::deliver` sends them.

Contract (events/woocommerce/README.md has it in brief, with sample stories):

- `POST`, `Content-Type: application/json`, body = the order as `GET /wp-json/wc/v3/orders/<id>`
  returns it (the webhook's API version: v3), user agent `WooCommerce/<v> Hookshot (WordPress/<v>)`.
- Headers: `X-WC-Webhook-Source` (the shop's home URL, kept as `shop_id`), `X-WC-Webhook-Topic`
  (`order.created`, `order.updated`, `order.deleted`, `order.restored`), `X-WC-Webhook-Resource`
  (`order`), `X-WC-Webhook-Event` (`created`...), `X-WC-Webhook-Signature`, `X-WC-Webhook-ID`
  (the webhook's id), `X-WC-Webhook-Delivery-ID`.
- `X-WC-Webhook-Signature` = base64 of HMAC-SHA256 over the raw body, keyed with the webhook's
  secret after WordPress's `wp_specialchars_decode(secret, ENT_QUOTES)`: a secret containing
  `&amp;`, `&lt;`, `&gt;`, `&quot;` or `&#039;` signs with the decoded characters, so both
  forms of each configured secret are tried, in constant time.
- **WooCommerce signs no timestamp**: no freshness window; replays are absorbed by the dedupe.
- The ping: when a webhook is created (REST) or first saved active (admin), WooCommerce POSTs
  the form body `webhook_id=<id>` with no X-WC headers and no signature, and insists on exactly
  200. The hub answers 200 and produces no event.
- Success is 2xx (301/302 count too); WooCommerce does not retry a failed delivery, it counts
  consecutive failures and disables the webhook after more than 5. The hub replies 200 with an
  empty body (WooCommerce reads only the status).
- `X-WC-Webhook-Delivery-ID` is `wp_hash(webhook id . time())`: new on every delivery, so it
  cannot dedupe. The same order snapshot can be delivered more than once (several hooks per
  topic, `order.updated` fired by saves that change nothing the payload shows), so the event id
  is derived from the snapshot: `<order id>:<date_modified_gmt>:<status>:<digest of the facts>`.
  A snapshot delivered again is the same event; two different snapshots never share an id.
- Event time: `date_modified_gmt` (UTC, no offset in the payload). Last-writer-wins uses it, so
  an old snapshot arriving late never overwrites a newer one.
- `order.deleted` is the order going to the trash: its payload is only `{"id": N}` with no
  time, so it is acknowledged and produces nothing (status `trash` itself maps to nothing);
  `order.restored` carries the whole order again.
- Order key: `id` (the post/order id) as a string; `number` is a display number plugins rewrite.
- Money: decimal strings in the order `currency` (`total`, refunds' `total` negative
  "-10.00"); line `price` is a JSON number (line total / quantity): read as Decimal, rounded
  half-up to minor units.
- Status: `status` maps onto milestones (table below). `date_paid_gmt` is set once, when the
  order first reaches a paid status, and is kept after: it adds PAID whatever the status now.
  `on-hold` is "awaiting payment confirmation" (bank transfer, cheque): unpaid, so
  PENDING_PAYMENT; an order the merchant puts on hold after it was paid is the hub's ON_HOLD.
  `completed` is the merchant marking it fulfilled: SHIP_REQUESTED (ST-4), not delivered.
  `checkout-draft` is a block-checkout cart, not an order yet: no facts.
- Refunds: each `refunds[]` entry `{id, reason, total}` is a REFUNDED after-sale case.
  Only `shipping.state` and `shipping.city` of the address are kept.

Sources: woocommerce/woocommerce `plugins/woocommerce/includes/class-wc-webhook.php` (deliver:
headers, body, signature, delivery id, user agent; deliver_ping; failure counting; topic hooks;
deleted payload = id only), `src/Enums/OrderStatus.php` (statuses and their meanings),
`includes/rest-api/Controllers/Version2/class-wc-rest-orders-v2-controller.php` (payload
fields; refunds' total is "-" + amount), `includes/abstracts/abstract-wc-order.php` /
`class-wc-order.php` (`maybe_set_date_paid`); woocommerce/woocommerce-rest-api-docs
`source/includes/wp-api-v3/_orders.md` and `_webhooks.md`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeGuard

from orderhub.channels.base import (
    NO_RULES,
    Channel,
    ChannelSettings,
    FieldRules,
    InboundRequest,
    Malformed,
    Reply,
    Unauthorized,
    constant_time_match,
    drift_paths,
)
from orderhub.channels.shopify import known_paths, load_json, validated_event
from orderhub.channels.shopify_normalise import CURRENCY_EXPONENT, to_minor
from orderhub.channels.values import ascii_digits
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, EventKind
from orderhub.models.order import OrderEvent

SOURCE_HEADER = "x-wc-webhook-source"
TOPIC_HEADER = "x-wc-webhook-topic"
RESOURCE_HEADER = "x-wc-webhook-resource"
EVENT_HEADER = "x-wc-webhook-event"
SIGNATURE_HEADER = "x-wc-webhook-signature"
WEBHOOK_ID_HEADER = "x-wc-webhook-id"
DELIVERY_ID_HEADER = "x-wc-webhook-delivery-id"
USER_AGENT = "WooCommerce/10.3.0 Hookshot (WordPress/6.8.3)"
PING = re.compile(rb"webhook_id=\d{1,20}")
_CURRENCY = re.compile(r"[A-Z]{3}")
MERCHANT_HOLD = "on-hold by the merchant"

_C, _P, _S, _X = EventKind.CREATED, EventKind.PAID, EventKind.SHIP_REQUESTED, EventKind.CANCELLED


class Row(NamedTuple):
    """What a status says: milestones, the hold snapshot ("" = not held, None = silent), the hold
    when the order was paid (`date_paid_gmt` set), and whether the payload's details are facts."""

    kinds: tuple[EventKind, ...]
    hold: str | None
    hold_if_paid: str | None
    facts: bool = True


# status (Enums\OrderStatus). PAID comes from the status or from date_paid_gmt.
STATUS: Mapping[str, Row] = {
    "pending": Row((_C,), "", ""),  # received, no payment yet
    "failed": Row((_C,), "", ""),  # payment failed or declined; the customer may pay again
    "on-hold": Row((_C,), "", MERCHANT_HOLD),  # awaiting payment confirmation (unpaid)
    "processing": Row((_C, _P), "", ""),  # paid, stock reduced, to be fulfilled
    "ready-for-pickup": Row((_C, _P), "", ""),  # local pickup: ready to collect (WooCommerce 11.3+)
    "completed": Row((_C, _P, _S), "", ""),  # marked fulfilled by the merchant
    "cancelled": Row((_C, _X), "", ""),  # cancelled by an admin or the customer
    "refunded": Row((_C, _P), "", ""),  # fully refunded after payment: the refunds are the cases
    "checkout-draft": Row((), None, None, facts=False),  # block checkout in progress: not an order yet
    "trash": Row((), None, None),  # in the trash: says nothing about the order's life
    # Never delivered (WC_Webhook ignores drafts), mapped so a plugin that sends them is not a gap.
    "draft": Row((), None, None, facts=False),
    "auto-draft": Row((), None, None, facts=False),
    "new": Row((), None, None, facts=False),
}

SNAPSHOT, NOTHING = "snapshot", "nothing"
TOPICS: Mapping[str, str] = {
    "order.created": SNAPSHOT,
    "order.updated": SNAPSHOT,  # also fired by a refund being added or deleted
    "order.restored": SNAPSHOT,  # back from the trash: the whole order
    "order.deleted": NOTHING,  # moved to the trash: payload {"id": N} only
}

_META = {"id": None, "key": None, "value": None, "display_key": None, "display_value": None}
_TAXES = {"id": None, "total": None, "subtotal": None}


def _names(words: str) -> dict[str, Any]:
    return dict.fromkeys(words.split())


def _item(words: str, **children: Any) -> dict[str, Any]:
    return {**_names(words), "meta_data[]": _META, **children}


_ADDRESS = _names("first_name last_name company address_1 address_2 city state postcode country email phone")
_ORDER = {
    **_names(
        "id parent_id number order_key created_via version status currency currency_symbol date_created "
        "date_created_gmt date_modified date_modified_gmt discount_total discount_tax shipping_total shipping_tax "
        "cart_tax total total_tax prices_include_tax customer_id customer_ip_address customer_user_agent "
        "customer_note payment_method payment_method_title transaction_id date_paid date_paid_gmt date_completed "
        "date_completed_gmt cart_hash payment_url is_editable needs_payment needs_processing _links"),
    "billing": _ADDRESS,
    "shipping": _ADDRESS,
    "meta_data[]": _META,
    "line_items[]": _item("id name product_id variation_id quantity tax_class subtotal subtotal_tax total total_tax "
                          "sku global_unique_id price parent_name",
                          **{"taxes[]": _TAXES, "image": _names("id src"), "cost_of_goods_sold": _names("value")}),
    "tax_lines[]": _item("id rate_code rate_id label compound tax_total shipping_tax_total rate_percent"),
    "shipping_lines[]": _item("id method_title method_id instance_id total total_tax tax_status",
                              **{"taxes[]": _TAXES}),
    "fee_lines[]": _item("id name tax_class tax_status amount total total_tax", **{"taxes[]": _TAXES}),
    "coupon_lines[]": _item("id code discount discount_tax discount_type nominal_amount free_shipping"),
    "refunds[]": {"id": None, "reason": None, "total": None},
    "cost_of_goods_sold": _names("total_value"),
}
KNOWN_FIELDS = known_paths(_ORDER)
# Known, never read: extensions' meta values (any JSON) and the REST links.
OPAQUE_FIELDS: tuple[str, ...] = ("_links", *(f"{holder}meta_data[].{f}" for holder in (
    "", "line_items[].", "tax_lines[].", "shipping_lines[].", "fee_lines[].", "coupon_lines[].")
    for f in ("value", "display_value")))


class WooCommerceChannel(Channel):
    name = "woocommerce"
    kept_headers = (SOURCE_HEADER, TOPIC_HEADER, RESOURCE_HEADER, EVENT_HEADER, SIGNATURE_HEADER, WEBHOOK_ID_HEADER,
                    DELIVERY_ID_HEADER)
    known_fields = KNOWN_FIELDS
    status_map = STATUS
    topic_map = TOPICS

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        # No timestamp to check: WooCommerce signs none (see the module docstring on replays).
        if is_ping(request.body, request.headers):
            return  # unsigned by WooCommerce; it changes nothing, and refusing it blocks the webhook's creation
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not signature:
            raise Unauthorized("missing X-WC-Webhook-Signature")
        expected = [sign(key, request.body) for secret in settings.secrets for key in _secret_forms(secret)]
        if not constant_time_match(expected, signature):
            raise Unauthorized("signature does not match")

    def prepare(self, payload: Any, rules: FieldRules) -> tuple[Any, tuple[str, ...]]:
        if rules.drop or rules.rename:
            return super().prepare(payload, FieldRules(rules.drop, rules.rename, rules.ignore + OPAQUE_FIELDS))
        # Channel.prepare's answer without building the FieldRules it would be given
        return payload, drift_paths(payload, KNOWN_FIELDS, rules.ignore + OPAQUE_FIELDS)

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        headers = {k.lower(): v for k, v in (received_headers or {}).items()}
        if is_ping(body, headers):
            return []
        topic = headers.get(TOPIC_HEADER, "").strip()
        if not topic:
            raise Malformed("missing X-WC-Webhook-Topic")
        carries = TOPICS.get(topic)
        if carries is None and not topic.startswith("order."):
            raise Malformed(f"topic {topic[:60]} is not an order topic: subscribe this endpoint to order.* only")
        payload = load_json(body)
        if carries == NOTHING:
            _order_id(payload.get("id"))
            return []
        payload, drift = self.prepare(payload, rules)
        event = _snapshot_event(payload, topic, drift)
        event["shop_id"] = headers.get(SOURCE_HEADER, "")[:128]
        if carries is None:
            event["gaps"] = (f"topic={topic[:60]}", *event["gaps"])
        return [validated_event(event)]

    def accepted(self) -> Reply:
        return Reply(200, "", "text/plain")


def _snapshot_event(order: Mapping[str, Any], topic: str, drift: tuple[str, ...]) -> dict[str, Any]:
    order_id = _order_id(order.get("id"))
    status = order.get("status")
    currency = order.get("currency")
    if not isinstance(currency, str) or _CURRENCY.fullmatch(currency) is None:
        raise Malformed("currency: an ISO 4217 currency code is required")
    modified = _gmt(order.get("date_modified_gmt") or order.get("date_created_gmt"), "date_modified_gmt")
    paid = order.get("date_paid_gmt") is not None and order.get("date_paid_gmt") != ""
    if paid:
        _gmt(order.get("date_paid_gmt"), "date_paid_gmt")
    row = STATUS.get(status) if isinstance(status, str) else None
    kinds: list[EventKind] = []
    gaps: list[str] = []
    hold: str | None = None
    if row is None:
        gaps.append(f"status={status}")
    else:
        kinds += row.kinds
        hold = row.hold_if_paid if paid else row.hold
    facts = row is None or row.facts
    if paid and facts:
        kinds += (_C, _P)
    total = to_minor(order.get("total"), currency, "total")
    event: dict[str, Any] = {
        "channel": "woocommerce", "channel_order_id": order_id, "channel_code": f"{topic} status={status}"[:200],
        "event_time": modified, "kinds": tuple(dict.fromkeys(kinds)), "gaps": tuple(gaps), "drift": drift,
        "hold": hold if facts else None,
        "event_id": snapshot_id(order_id, modified, str(status), _facts_digest(order)),
    }
    if not facts:
        return event
    lines, rounded = _lines(order.get("line_items"), currency)
    if rounded:
        # WooCommerce's line `price` is the line total over the quantity (10.00 / 3): below the minor
        # unit it is rounded to one, and said so; the order and line totals stay exact.
        event["gaps"] = (*event["gaps"], SUB_MINOR_PRICE)
    if lines:
        event["details"] = {"currency": currency, "total_amount": total, "lines": lines,
                            "region": _region(order.get("shipping"))}
    if _P in kinds:
        transaction = order.get("transaction_id")
        method = order.get("payment_method")
        event["payment"] = {"amount": total, "transaction_id": transaction[:64] if isinstance(transaction, str) else "",
                            "method": method[:64] if isinstance(method, str) else ""}
    event["aftersales"] = tuple(_refund_case(refund, currency) for refund in _objects(order.get("refunds"), "refunds"))
    return event


def _refund_case(refund: Mapping[str, Any], currency: str) -> dict[str, Any]:
    amount = to_minor(refund.get("total"), currency, "refunds[].total")
    reason = refund.get("reason")
    return {"case_id": _order_id(refund.get("id"), "refunds[].id"), "state": AftersaleState.REFUNDED,
            "type": AftersaleType.REFUND_ONLY, "amount": abs(amount),
            "reason": reason[:200] if isinstance(reason, str) else "", "channel_state": "refund"}


SUB_MINOR_PRICE = "line_items[].price: below the minor unit, rounded"


def _lines(items: Any, currency: str) -> tuple[list[dict[str, Any]], bool]:
    """The lines, and whether a unit price had to be rounded to the currency's minor unit."""
    lines = []
    rounded = False
    for item in _objects(items, "line_items"):
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise Malformed("line_items[].quantity: a whole number is required")
        if quantity == 0:
            continue
        sku = item.get("sku")
        sku = sku.strip() if isinstance(sku, str) else ""
        if not sku:  # products without a SKU: the variation (or product) id is the stock unit
            product = item.get("variation_id") or item.get("product_id") or item.get("id")
            sku = f"product-{product}" if product else "unknown"
        price = item.get("price")
        if price is None:  # older payloads: the line total over the quantity
            total = to_minor(item.get("total"), currency, "line_items[].total")
            price = (Decimal(total) / quantity).scaleb(-CURRENCY_EXPONENT.get(currency, 2))
        try:
            unit_price = to_minor(price, currency, "line_items[].price")
        except Malformed:
            unit_price = to_minor(price, currency, "line_items[].price", exact=False)  # still refuses non-amounts
            rounded = True
        lines.append({"sku": sku[:64], "name": str(item.get("name") or "")[:200], "quantity": quantity,
                      "unit_price": unit_price})
    return lines, rounded


def _region(address: Any) -> dict[str, str]:
    if not _is_mapping(address):
        return {"province": "", "city": ""}
    return {key: value.strip()[:64] if isinstance(value, str) else ""
            for key, value in (("province", address.get("state")), ("city", address.get("city")))}


# json.dumps(facts, default=str, separators=(",", ":"), ensure_ascii=False) without an encoder per call
_FACTS_JSON = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False)


def _facts_digest(order: Mapping[str, Any]) -> str:
    """A short digest of what the hub reads, so two snapshots of the same second never share an id."""
    facts = [order.get(k) for k in ("status", "currency", "total", "date_paid_gmt", "transaction_id")]
    facts.append([[r.get("id"), r.get("total")] for r in order.get("refunds") or [] if _is_mapping(r)])
    facts.append([[i.get("id"), i.get("sku"), i.get("quantity"), i.get("total")]
                  for i in order.get("line_items") or [] if _is_mapping(i)])
    shipping = order.get("shipping")
    facts.append([shipping.get("state"), shipping.get("city")] if _is_mapping(shipping) else None)
    return hashlib.sha256(_FACTS_JSON.encode(facts).encode()).hexdigest()[:12]


def snapshot_id(order_id: str, modified: datetime, status: str, digest: str) -> str:
    at = modified.astimezone(UTC)
    if at.year < 1000:  # strftime's %Y does not pad small years on every platform: keep its spelling
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:  # %-formatting: a third of strftime's cost
        stamp = "%04d-%02d-%02dT%02d:%02d:%02dZ" % (at.year, at.month, at.day, at.hour, at.minute, at.second)  # noqa: UP031
    return f"{order_id}:{stamp}:{status[:24]}:{digest}"


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """isinstance(value, Mapping), the ABC's check skipped for a plain dict (what JSON gives)."""
    return type(value) is dict or isinstance(value, Mapping)


def _order_id(value: Any, where: str = "id") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not ascii_digits(str(value)) \
            or len(str(value)) > 20:
        raise Malformed(f"{where}: a numeric id is required")
    return str(value)


def _gmt(value: Any, where: str) -> datetime:
    """WooCommerce's *_gmt fields: ISO 8601 without offset, in UTC."""
    if not isinstance(value, str) or not value:
        raise Malformed(f"{where}: a date is required")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{where}: not an ISO 8601 date") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _objects(value: Any, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not (_DICT.issuperset(map(type, value))
                                           or all(isinstance(v, Mapping) for v in value)):
        raise Malformed(f"{where}: a list of objects is required")
    return value


_DICT = frozenset({dict})


def is_ping(body: bytes, headers: Mapping[str, str]) -> bool:
    """The creation ping: `webhook_id=<id>`, form-encoded, without the X-WC-Webhook headers."""
    return TOPIC_HEADER not in headers and SIGNATURE_HEADER not in headers and PING.fullmatch(body.strip()) is not None


_ENTITIES = (("&quot;", '"'), ("&#039;", "'"), ("&#39;", "'"), ("&#x27;", "'"), ("&lt;", "<"), ("&gt;", ">"),
             ("&amp;", "&"))


def _secret_forms(secret: str) -> tuple[str, ...]:
    """The secret, and its wp_specialchars_decode(ENT_QUOTES) form when that differs."""
    decoded = secret
    for entity, char in _ENTITIES:
        decoded = decoded.replace(entity, char)
    return (secret,) if decoded == secret else (secret, decoded)


def sign(secret: str, body: bytes) -> str:
    """X-WC-Webhook-Signature: base64 HMAC-SHA256 of the raw body keyed with the webhook secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


def php_json(payload: bytes) -> bytes:
    """The body as PHP's wp_json_encode writes it: ASCII only (\\uXXXX) and escaped slashes."""
    return json.dumps(json.loads(payload), ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What WooCommerce sends (tests and the demo): the ping as is, an order body encoded and signed.

    The delivery id is new for every call, as WooCommerce's is; the other headers come from `headers`.
    """
    out = {k.lower(): v for k, v in headers.items()}
    out["user-agent"] = USER_AGENT
    if PING.fullmatch(payload.strip()) and TOPIC_HEADER not in out:
        out["content-type"] = "application/x-www-form-urlencoded"
        return out, payload
    try:
        body = php_json(payload)
    except ValueError:  # not JSON (tests of malformed bodies): sent as given
        body = payload
    topic = out.get(TOPIC_HEADER, "")
    resource, _, event = topic.partition(".")
    out.setdefault(RESOURCE_HEADER, resource)
    out.setdefault(EVENT_HEADER, event)
    webhook = out.setdefault(WEBHOOK_ID_HEADER, "1")
    seed = f"{webhook}{now.timestamp()}{hashlib.sha256(body).hexdigest()}".encode()
    out.setdefault(DELIVERY_ID_HEADER, hashlib.md5(seed, usedforsecurity=False).hexdigest())
    out |= {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
    return out, body


CHANNEL = WooCommerceChannel()
