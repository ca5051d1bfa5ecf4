"""`mall`: the merchant's own shop and mini-program, on the contract orderhub publishes.

Contract (events/mall/README.md has the full text and samples):
- POST /webhooks/mall, JSON body, at most 64 KiB.
- `X-Mall-Timestamp`: Unix seconds when the shop sent it; accepted within the configured
  tolerance (300 s) either side of the hub clock.
- `X-Mall-Signature`: `sha256=` + hex HMAC-SHA256(secret, timestamp + "." + raw body).
  Several secrets may be valid at once (rotation); any match is accepted.
- Body: `event_id` (unique per event, the dedupe key), `event_type`, `event_time` (ISO 8601
  with offset), `shop_id`, `order{...}`. Money in minor units (fen).
- Reply 200 `{"code":"SUCCESS"}` once stored; errors `{"code":"REJECTED","message":...}`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

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
from orderhub.channels.values import signed_timestamp
from orderhub.lifecycle.statuses import AftersaleState, AftersaleType, EventKind
from orderhub.models.order import (
    AwareDatetime,
    OrderEvent,
)

TIMESTAMP_HEADER = "x-mall-timestamp"
SIGNATURE_HEADER = "x-mall-signature"
SIGNATURE_PREFIX = "sha256="


# Amounts and quantities are JSON integers: `true` is an int to Python and to pydantic's lax mode.
MinorUnits = Annotated[int, Strict(), Field(ge=0, le=10**12)]


class _Line(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(max_length=200)] = ""
    quantity: Annotated[int, Strict(), Field(gt=0, le=100_000)]
    unit_price: MinorUnits


class _Receiver(BaseModel):
    # Personal data: validated for shape, never stored on the order, never logged.
    name: str = ""
    phone: str = ""
    province: str = ""
    city: str = ""
    district: str = ""
    address: str = ""


class _Payment(BaseModel):
    transaction_id: Annotated[str, Field(min_length=1, max_length=64)]
    method: str = ""
    amount: MinorUnits


class _Shipment(BaseModel):
    carrier: Annotated[str, Field(min_length=1, max_length=32)]
    tracking_no: Annotated[str, Field(min_length=1, max_length=64)]


class _Refund(BaseModel):
    refund_id: Annotated[str, Field(min_length=1, max_length=64)]
    amount: MinorUnits
    reason: Annotated[str, Field(max_length=200)] = ""


class _Order(BaseModel):
    model_config = ConfigDict(extra="allow")

    order_no: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    total_amount: MinorUnits | None = None
    lines: list[_Line] | None = None
    receiver: _Receiver | None = None
    payment: _Payment | None = None
    shipment: _Shipment | None = None
    refund: _Refund | None = None


# What each event type must carry, beyond the order number.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "order.created": ("currency", "total_amount", "lines"),
    "order.paid": ("payment",),
    "order.shipped": ("shipment",),
    "order.refunded": ("refund",),
}


class MallWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_id: Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    event_type: Annotated[str, Field(pattern=r"^order\.[a-z_]+$", max_length=40)]
    event_time: AwareDatetime
    shop_id: Annotated[str, Field(min_length=1, max_length=64)]
    order: _Order

    @model_validator(mode="after")
    def _carries_what_its_type_needs(self) -> MallWebhook:
        missing = [f for f in _REQUIRED.get(self.event_type, ()) if getattr(self.order, f) is None]
        if missing:
            raise ValueError(f"{self.event_type} needs order.{', order.'.join(missing)}")
        return self



class MallChannel(Channel):
    name = "mall"
    max_body_bytes = 64 * 1024
    kept_headers = (TIMESTAMP_HEADER, SIGNATURE_HEADER)
    # event_type -> the milestones it reports. "order.shipped" is the shop marking the order
    # shipped: a ship request until the warehouse reports the physical outbound (ST-4).
    status_map: Mapping[str, tuple[EventKind, ...]] = {
        "order.created": (EventKind.CREATED,),
        "order.paid": (EventKind.PAID,),
        "order.shipped": (EventKind.SHIP_REQUESTED,),
        "order.delivered": (EventKind.DELIVERED,),
        "order.completed": (EventKind.COMPLETED,),
        "order.cancelled": (EventKind.CANCELLED,),
        "order.refunded": (),  # the refund itself is the fact (an after-sale case, REFUNDED)
    }

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise Unauthorized("missing X-Mall-Signature")
        signed_timestamp(timestamp, "X-Mall-Timestamp", now, settings.timestamp_tolerance_s,
                         settings.timestamp_future_s)
        if not signature.startswith(SIGNATURE_PREFIX):
            raise Unauthorized("X-Mall-Signature must start with sha256=")
        expected = [sign(secret, timestamp, request.body) for secret in settings.secrets]
        if not constant_time_match(expected, signature):
            raise Unauthorized("signature does not match")

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        # The bounded reader first (depth, size, duplicate keys, surrogates), then the model.
        payload = loads_decimal(body)
        if rules.drop or rules.rename:
            payload, _ = self.prepare(payload, rules)
        try:
            hook = MallWebhook.model_validate(payload)
            return [self._normalise(hook)]
        except ValidationError as exc:
            raise Malformed(_describe(exc)) from None

    def _normalise(self, hook: MallWebhook) -> OrderEvent:
        o = hook.order
        kinds = self.status_map.get(hook.event_type)
        event: dict = {"channel": self.name, "channel_order_id": o.order_no, "shop_id": hook.shop_id,
                       "event_id": hook.event_id, "channel_code": hook.event_type,
                       "kinds": kinds or (), "gaps": () if kinds is not None else (f"event_type={hook.event_type}",),
                       "event_time": hook.event_time}
        if o.lines is not None and o.currency is not None and o.total_amount is not None:
            receiver = o.receiver
            event["details"] = {"currency": o.currency, "total_amount": o.total_amount,
                                "lines": [line.model_dump() for line in o.lines],
                                "region": {"province": receiver.province if receiver else "",
                                           "city": receiver.city if receiver else ""}}
        if o.payment:
            event["payment"] = {"transaction_id": o.payment.transaction_id, "amount": o.payment.amount,
                                "method": o.payment.method}
        if o.shipment:
            event["shipment"] = {"carrier": o.shipment.carrier, "tracking_no": o.shipment.tracking_no}
        if o.refund:
            event["aftersales"] = ({"case_id": o.refund.refund_id, "state": AftersaleState.REFUNDED,
                                    "type": AftersaleType.REFUND_ONLY, "amount": o.refund.amount,
                                    "reason": o.refund.reason, "channel_state": hook.event_type},)
        return OrderEvent.model_validate(event)  # one validation in pydantic-core for the whole event

    def accepted(self) -> Reply:
        return Reply(200, '{"code":"SUCCESS"}')

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return Reply(rejection.status_code, compact_json({"code": "REJECTED", "message": rejection.reason}))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The mall signature: what a shop sends and what the hub recomputes."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What a shop sends: the body as is, timestamped and signed (used by tests and the demo)."""
    timestamp = str(int(now.timestamp()))
    return ({**{k.lower(): v for k, v in headers.items()}, "content-type": "application/json",
             TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, payload)}, payload)


def _describe(exc: ValidationError) -> str:
    """First few validation problems as `field: message`, without echoing input values."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


CHANNEL = MallChannel()
