"""`shopify`: Shopify webhooks over HTTPS (JSON, REST resource payloads), API version 2025-10.

Contract (events/shopify/README.md has it in brief, with sample stories):

- `POST` with the topic's REST resource as a JSON body: the whole order for `orders/*`, the
  refund for `refunds/create`, the fulfillment for `fulfillments/*`.
- Headers (names case-insensitive): `X-Shopify-Topic`, `X-Shopify-Hmac-Sha256`,
  `X-Shopify-Shop-Domain` (the shop's myshopify.com domain, kept as `shop_id`),
  `X-Shopify-API-Version` (the version the payload was serialised with),
  `X-Shopify-Webhook-Id` ("a unique composite key per delivery"), `X-Shopify-Triggered-At`
  (when Shopify triggered the delivery), `X-Shopify-Event-Id` ("a unique ID shared across all
  deliveries produced by the same merchant action"; the same value on a redelivery means a
  duplicate), optionally `X-Shopify-Name`.
- `X-Shopify-Hmac-Sha256` = base64 of HMAC-SHA256 over the raw body keyed with the app's client
  secret (for a webhook made in the shop admin: the key the admin shows). Compared in constant
  time against every configured secret (after a rotation Shopify may sign with the old secret
  for up to an hour, so keep both).
- **Shopify signs no timestamp and no nonce**: there is no freshness window, and a captured
  delivery stays valid for ever. Replays change nothing because the event id is the dedupe key.
- Success is any 2xx within 5 s; the hub replies 200 with an empty body (Shopify reads only the
  status). A failed delivery is retried up to 8 times over 4 hours, then dropped, and a
  subscription that keeps failing is removed. 401 on a bad HMAC (Shopify's compliance rules).
- Dedupe: `event_id` = `<topic>:<X-Shopify-Event-Id>` (falls back to `X-Shopify-Webhook-Id`).
  The event id is stable across Shopify's retries; one merchant action fans out into several
  topics (`orders/paid` and `orders/updated`) under the same Event-Id, so the topic is part of
  the key or the second topic would be dropped as a duplicate.
- Event time: the payload's own `updated_at` (orders, fulfillments) or `created_at` (refunds).
  Last-writer-wins uses it, so an old snapshot delivered late (a retry hours later) never
  overwrites a newer one. `X-Shopify-Triggered-At` says when the delivery was triggered: a
  payload much older than it is such a late snapshot. It is kept with the raw request for
  operations and plays no part in ordering.
- The order key is the order `id` (as a string). `name` (`#1001`) and `order_number` are display
  numbers the merchant can re-prefix: never part of the key.
- Money: decimal strings in the shop currency (`currency`), converted with Decimal to minor
  units using the currency's ISO 4217 exponent (JPY 0, KWD 3, most 2).
- Status: an order snapshot maps `financial_status` x `fulfillment_status` x `cancelled_at`
  onto milestones (the tables in `shopify_normalise`). `fulfilled`/`partial` and a successful
  fulfillment are the merchant marking goods shipped: SHIP_REQUESTED, never OUTBOUND (ST-4). The
  carrier tracking Shopify relays on a fulfillment (`shipment_status`) maps to PICKED_UP/DELIVERED.
  `closed_at` (archived) is the merchant's housekeeping and is ignored.
- Refunds: each refund (a `refunds/create` payload, or an entry of the order's `refunds[]`) is an
  after-sale case keyed by the refund id; its amount is the sum of its `kind: refund`
  transactions with `status: success`. Only province and city of `shipping_address` are kept.
- Compliance and app topics (`customers/data_request`, `customers/redact`, `shop/redact`,
  `app/uninstalled`) are acknowledged and produce nothing (the hub keeps no customer data);
  any other non-order topic is refused (400) so a wrong subscription is noticed.

Sources: shopify.dev "Webhooks delivery structure" (headers and their meaning), "Ignore duplicate
webhooks" (X-Shopify-Event-Id), "Deliver webhooks through HTTPS" and "Troubleshooting webhooks"
(HMAC over the raw body with the client secret, 5 s timeout, 8 retries in 4 hours, dev changelog
2024-09-10); the REST Admin Order, Refund, Transaction and Fulfillment resources (field names
and enums: financial_status, fulfillment_status, cancel_reason = OrderCancelReason, transaction
kind/status, fulfillment status/shipment_status); payload shapes cross-checked against
`Shopify/shopify-api-js` REST fixtures for 2025-04 (refunds) and a captured 2025-01
`orders/create` delivery.

Layout: this module is the delivery side (headers, authentication, topics and their payload
schemas, the reply, `client_request`); `orderhub.channels.shopify_normalise` holds the mapping
tables and reads an order, refund or fulfillment payload into the event's facts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
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
    constant_time_match,
    drift_paths,
    loads_decimal,
)
from orderhub.channels.shopify_normalise import (
    FINANCIAL_STATUS,
    FULFILLMENT_STATUS,
    fulfillment_event,
    order_event,
    refund_event,
    unmapped_event,
)
from orderhub.models.order import OrderEvent

TOPIC_HEADER = "x-shopify-topic"
HMAC_HEADER = "x-shopify-hmac-sha256"
SHOP_HEADER = "x-shopify-shop-domain"
API_VERSION_HEADER = "x-shopify-api-version"
WEBHOOK_ID_HEADER = "x-shopify-webhook-id"
EVENT_ID_HEADER = "x-shopify-event-id"
TRIGGERED_AT_HEADER = "x-shopify-triggered-at"
NAME_HEADER = "x-shopify-name"
API_VERSION = "2025-10"
USER_AGENT = "Shopify-Captain-Hook"

# What each topic carries.
ORDER, REFUND, FULFILLMENT, NOTHING = "order", "refund", "fulfillment", "nothing"
TOPICS: Mapping[str, str] = {
    "orders/create": ORDER,  # not necessarily paid
    "orders/updated": ORDER,
    "orders/paid": ORDER,
    "orders/cancelled": ORDER,
    "orders/fulfilled": ORDER,
    "orders/partially_fulfilled": ORDER,
    "refunds/create": REFUND,
    "fulfillments/create": FULFILLMENT,
    "fulfillments/update": FULFILLMENT,
    # Mandatory compliance topics and uninstall: acknowledged, nothing to apply.
    "customers/data_request": NOTHING,
    "customers/redact": NOTHING,
    "shop/redact": NOTHING,
    "app/uninstalled": NOTHING,
}

# Payload schemas (field paths; `[]` = every element). Opaque subtrees: known, never read, and
# their inner fields are not drift (personal data, receipts, free-form properties).
def known_paths(spec: Mapping[str, Any], prefix: str = "") -> frozenset[str]:
    """Every path of a nested spec {name: child spec or None}; a `[]` suffix marks a list."""
    paths: set[str] = set()
    for key, child in spec.items():
        name = key.removesuffix("[]")
        path = f"{prefix}.{name}" if prefix else name
        paths.add(path)
        if child:
            paths |= known_paths(child, path + "[]" if key.endswith("[]") else path)
    return frozenset(paths)


def _names(words: str) -> dict[str, Any]:
    return dict.fromkeys(words.split())


_AMOUNT = {"amount": None, "currency_code": None, "currency": None}
_MONEY = {"shop_money": _AMOUNT, "presentment_money": _AMOUNT}
_TAX_LINE = {**_names("title price rate channel_liable"), "price_set": _MONEY}
_DISCOUNT_ALLOCATION = {**_names("amount discount_application_index"), "amount_set": _MONEY}
_LINE_ITEM = {
    **_names("id admin_graphql_api_id current_quantity fulfillable_quantity fulfillment_service fulfillment_status "
             "gift_card grams name price product_exists product_id properties quantity requires_shipping "
             "sales_line_item_group_id sku taxable title total_discount variant_id variant_inventory_management "
             "variant_title vendor pre_tax_price origin_location destination_location duties"),
    "price_set": _MONEY, "total_discount_set": _MONEY, "pre_tax_price_set": _MONEY,
    "attributed_staffs[]": _names("id quantity"),
    "tax_lines[]": _TAX_LINE,
    "discount_allocations[]": _DISCOUNT_ALLOCATION,
}
_FULFILLMENT = {
    **_names("id admin_graphql_api_id created_at location_id name order_id origin_address receipt service "
             "shipment_status status tracking_company tracking_number tracking_numbers tracking_url tracking_urls "
             "updated_at notify_customer variant_inventory_management"),
    "line_items[]": _LINE_ITEM,
}
_TRANSACTION = {
    **_names("id admin_graphql_api_id order_id kind gateway status message created_at test authorization "
             "location_id user_id parent_id processed_at device_id error_code source_name receipt amount currency "
             "payment_id manual_payment_gateway amount_rounding payment_details"),
    "total_unsettled_set": _MONEY,
}
_REFUND = {
    **_names("id admin_graphql_api_id order_id created_at processed_at note user_id restock return duties "
             "additional_fees"),
    "total_duties_set": _MONEY, "total_additional_fees_set": _MONEY,
    "refund_line_items[]": {**_names("id quantity line_item_id location_id restock_type subtotal total_tax"),
                            "subtotal_set": _MONEY, "total_tax_set": _MONEY, "line_item": _LINE_ITEM},
    "refund_shipping_lines[]": {**_names("id shipping_line_id shipping_line"),
                                "subtotal_amount_set": _MONEY, "tax_amount_set": _MONEY},
    "order_adjustments[]": {**_names("id order_id refund_id amount tax_amount kind reason"),
                            "amount_set": _MONEY, "tax_amount_set": _MONEY},
    "transactions[]": _TRANSACTION,
}
_ADDRESS = _names("first_name last_name name company address1 address2 city province province_code zip country "
                  "country_code phone latitude longitude")
_ORDER = {
    **_names("id admin_graphql_api_id app_id browser_ip buyer_accepts_marketing cancel_reason cancelled_at "
             "cart_token checkout_id checkout_token client_details closed_at confirmation_number confirmed "
             "contact_email created_at currency current_subtotal_price current_total_discounts current_total_price "
             "current_total_tax customer_locale device_id duties_included email estimated_taxes financial_status "
             "fulfillment_status landing_site landing_site_ref location_id merchant_business_entity_id "
             "merchant_of_record_app_id name note note_attributes number order_number order_status_url "
             "payment_gateway_names phone po_number presentment_currency processed_at reference referring_site "
             "source_identifier source_name source_url subtotal_price tags tax_exempt taxes_included test token "
             "total_discounts total_line_items_price total_outstanding total_price total_tax total_tip_received "
             "total_weight updated_at user_id billing_address customer payment_terms returns"),
    **dict.fromkeys((
        "current_shipping_price_set", "current_subtotal_price_set", "current_total_additional_fees_set",
        "current_total_discounts_set", "current_total_duties_set", "current_total_price_set", "current_total_tax_set",
        "original_total_additional_fees_set", "original_total_duties_set", "subtotal_price_set",
        "total_cash_rounding_payment_adjustment_set", "total_cash_rounding_refund_adjustment_set",
        "total_discounts_set", "total_line_items_price_set", "total_price_set", "total_shipping_price_set",
        "total_tax_set"), _MONEY),
    "company": _names("id location_id"),
    "discount_codes[]": _names("code amount type"),
    "discount_applications[]": _names("target_type type value value_type allocation_method target_selection title "
                                      "description code"),
    "tax_lines[]": _TAX_LINE,
    "line_items[]": _LINE_ITEM,
    "fulfillments[]": _FULFILLMENT,
    "refunds[]": _REFUND,
    "shipping_address": _ADDRESS,
    "shipping_lines[]": {
        **_names("id carrier_identifier code discounted_price is_removed phone price requested_fulfillment_service_id "
                 "source title delivery_category"),
        "price_set": _MONEY, "discounted_price_set": _MONEY, "current_discounted_price_set": _MONEY,
        "tax_lines[]": _TAX_LINE, "discount_allocations[]": _DISCOUNT_ALLOCATION,
    },
}
_OPAQUE_LINE = ("properties", "origin_location", "destination_location", "duties")
_OPAQUE_REFUND = ("return", "duties", "additional_fees", "refund_shipping_lines[].shipping_line",
                  "transactions[].receipt", "transactions[].payment_details",
                  *(f"refund_line_items[].line_item.{f}" for f in _OPAQUE_LINE))
_OPAQUE_FULFILLMENT = ("origin_address", "receipt", *(f"line_items[].{f}" for f in _OPAQUE_LINE))
ORDER_OPAQUE: tuple[str, ...] = (
    "customer", "billing_address", "client_details", "note_attributes", "payment_terms", "returns",
    *(f"line_items[].{f}" for f in _OPAQUE_LINE), *(f"refunds[].{f}" for f in _OPAQUE_REFUND),
    *(f"fulfillments[].{f}" for f in _OPAQUE_FULFILLMENT))
ORDER_FIELDS = known_paths(_ORDER)
REFUND_FIELDS = known_paths(_REFUND)
FULFILLMENT_FIELDS = known_paths(_FULFILLMENT)


class _Schema(Channel):
    """The known fields of one payload type, to list drift per topic."""

    def __init__(self, name: str, fields: frozenset[str], opaque: tuple[str, ...]) -> None:
        self.name = name
        self.known_fields = fields
        self.opaque = opaque

    def prepare(self, payload: Any, rules: FieldRules) -> tuple[Any, tuple[str, ...]]:
        if rules.drop or rules.rename:
            return super().prepare(payload, FieldRules(rules.drop, rules.rename, rules.ignore + self.opaque))
        # Channel.prepare's answer without building the FieldRules it would be given
        if not self.known_fields:
            return payload, ()
        return payload, drift_paths(payload, self.known_fields, rules.ignore + self.opaque)


_SCHEMAS: Mapping[str, _Schema] = {
    ORDER: _Schema("shopify-order", ORDER_FIELDS, ORDER_OPAQUE),
    REFUND: _Schema("shopify-refund", REFUND_FIELDS, _OPAQUE_REFUND),
    FULFILLMENT: _Schema("shopify-fulfillment", FULFILLMENT_FIELDS, _OPAQUE_FULFILLMENT),
}
_UNKNOWN_SCHEMA = _Schema("shopify-unknown", frozenset(), ())  # an unmapped orders/* topic: no drift claims


class ShopifyChannel(Channel):
    name = "shopify"
    kept_headers = (TOPIC_HEADER, HMAC_HEADER, SHOP_HEADER, API_VERSION_HEADER, WEBHOOK_ID_HEADER, EVENT_ID_HEADER,
                    TRIGGERED_AT_HEADER, NAME_HEADER)
    known_fields = ORDER_FIELDS | REFUND_FIELDS | FULFILLMENT_FIELDS
    status_map = FINANCIAL_STATUS
    fulfillment_map = FULFILLMENT_STATUS
    topic_map = TOPICS

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        # No timestamp to check: Shopify signs none (see the module docstring on replays).
        signature = request.headers.get(HMAC_HEADER, "").strip()
        if not signature:
            raise Unauthorized("missing X-Shopify-Hmac-Sha256")
        expected = [sign(secret, request.body) for secret in settings.secrets]
        if not constant_time_match(expected, signature):
            raise Unauthorized("signature does not match")

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        headers = {k.lower(): v for k, v in (received_headers or {}).items()}
        topic = headers.get(TOPIC_HEADER, "").strip()
        if not topic:
            raise Malformed("missing X-Shopify-Topic")
        carries = TOPICS.get(topic)
        if carries == NOTHING:
            return []
        if carries is None and not topic.startswith("orders/"):
            raise Malformed(f"topic {topic[:60]} is not an order topic: subscribe this endpoint to orders/*, "
                            "refunds/create and fulfillments/* only")
        delivery = (headers.get(EVENT_ID_HEADER) or headers.get(WEBHOOK_ID_HEADER) or "").strip()
        if not delivery:
            raise Malformed("missing X-Shopify-Event-Id and X-Shopify-Webhook-Id")
        if len(delivery) > 96 or not delivery.isprintable():
            raise Malformed("X-Shopify-Event-Id is not an id")
        payload = load_json(body)
        payload, drift = _SCHEMAS.get(carries or "", _UNKNOWN_SCHEMA).prepare(payload, rules)
        base: dict[str, Any] = {"channel": self.name, "shop_id": headers.get(SHOP_HEADER, "")[:128],
                                "event_id": f"{topic}:{delivery}", "drift": drift}
        if carries == ORDER:
            event = order_event(payload, topic, base)
        elif carries == REFUND:
            event = refund_event(payload, topic, base)
        elif carries == FULFILLMENT:
            event = fulfillment_event(payload, topic, base)
        else:
            event = unmapped_event(payload, topic, headers.get(TRIGGERED_AT_HEADER), base)
        return [validated_event(event)]

    def accepted(self) -> Reply:
        return Reply(200, "", "text/plain")


# Shared helpers (also used by the woocommerce module) -------------------------------------------


def load_json(body: bytes) -> dict[str, Any]:
    """The JSON object of a body; decimals stay Decimal so money never passes through float."""
    try:
        payload = loads_decimal(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("body is not JSON") from None
    if not isinstance(payload, dict):
        raise Malformed("body must be a JSON object")
    return payload


def describe(exc: ValidationError) -> str:
    """First few validation problems as `field: message`, without echoing input values."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def validated_event(event: dict[str, Any]) -> OrderEvent:
    """The event dict as an OrderEvent; a value the model refuses is a Malformed body."""
    try:
        return OrderEvent.model_validate(event)
    except ValidationError as exc:
        raise Malformed(describe(exc)) from None


def sign(secret: str, body: bytes) -> str:
    """X-Shopify-Hmac-Sha256: base64 HMAC-SHA256 of the raw body, keyed with the client secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What Shopify sends: the body as is, with its delivery headers and signature (tests and the demo).

    Missing ids are derived from the body, so the same payload is the same event; the trigger
    time defaults to `now` with Shopify's nanosecond precision.
    """
    out = {k.lower(): v for k, v in headers.items()}
    digest = hashlib.sha256(payload).hexdigest()
    out.setdefault(API_VERSION_HEADER, API_VERSION)
    out.setdefault(EVENT_ID_HEADER, str(uuid.UUID(digest[:32])))
    out.setdefault(WEBHOOK_ID_HEADER, str(uuid.UUID(digest[32:])))
    out.setdefault(TRIGGERED_AT_HEADER, now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z"))
    out |= {"content-type": "application/json", "user-agent": USER_AGENT, HMAC_HEADER: sign(secret, payload)}
    return out, payload


CHANNEL = ShopifyChannel()
