"""`wms`: the warehouse/scanner integration, on the contract orderhub publishes.

The only reporter of the physical outbound (ST-4, `RESERVED_KINDS`): an order is SHIPPED when
the warehouse scanned its packages out, not when a sales channel says "shipped".

Contract (events/wms/README.md has the full text and samples):
- POST /webhooks/wms, JSON body, at most 64 KiB.
- `X-Wms-Timestamp`: Unix seconds when the warehouse sent it; accepted within the configured
  tolerance (300 s) either side of the hub clock.
- `X-Wms-Signature`: `sha256=` + hex HMAC-SHA256(secret, timestamp + "." + raw body): the
  recipe of the `mall` contract (`mall.sign`). Several secrets may be valid at once (rotation).
- Body: `event_id`, `event_type` (`package.outbound`, `package.picked`, `package.packed`),
  `warehouse`, the order (`order: {channel, channel_order_id}` as the sales channel names it,
  or `order_id`, the hub id), and `package: {package_id, carrier, tracking_no, lines[{sku,
  quantity}], scanned_at, operator_id}`. `scanned_at` (ISO 8601 with offset) is the event time.
- `package.outbound` -> OUTBOUND + the package (`OutboundFact`) + its waybill (`ShipmentFact`).
  `package.picked`/`package.packed` are progress scans: logged on the order, no milestone, no
  fact. Another `package.*` type is a mapping gap. `ship.requested` and every non-`package.*`
  type are refused: ship requests come from the sales channels.
- `operator_id` is an id (no names: personal data); it is checked, not kept on the order.
- Reply 200 `{"code":"SUCCESS"}` once stored; errors `{"code":"REJECTED","message":...}` (as `mall`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

from orderhub.channels import CHANNEL_MODULES
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
    constant_time_match,
    loads_decimal,
)
from orderhub.channels.mall import CHANNEL as MALL
from orderhub.channels.mall import SIGNATURE_PREFIX, sign
from orderhub.channels.mall import _describe as describe_validation_error
from orderhub.channels.values import signed_timestamp
from orderhub.lifecycle.statuses import EventKind
from orderhub.models.order import AwareDatetime, OrderEvent, PackageLine

TIMESTAMP_HEADER = "x-wms-timestamp"
SIGNATURE_HEADER = "x-wms-signature"

# Channels whose orders a warehouse ships: every registered channel but the reporters themselves.
SALES_CHANNELS = frozenset(CHANNEL_MODULES) - {"wms", "kuaidi100"}

# event_type -> the milestones it reports.
EVENT_TYPES: Mapping[str, tuple[EventKind, ...]] = {
    "package.outbound": (EventKind.OUTBOUND,),  # scanned out of the warehouse: physically shipped
    "package.picked": (),  # picked from the shelves: progress only
    "package.packed": (),  # packed (and usually labelled): progress only
}

_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:#/-]+$")]

KNOWN_FIELDS = frozenset({
    "event_id", "event_type", "warehouse", "order", "order.channel", "order.channel_order_id", "order_id",
    "package", "package.package_id", "package.carrier", "package.tracking_no", "package.lines",
    "package.lines[].sku", "package.lines[].quantity", "package.scanned_at", "package.operator_id",
})


class _PackageLine(PackageLine):
    quantity: Annotated[int, Strict(), Field(gt=0, le=100_000)]  # a JSON integer: `true` is not 1


class _OrderRef(BaseModel):
    channel: Annotated[str, Field(min_length=1, max_length=32)]
    channel_order_id: _Id

    @model_validator(mode="after")
    def _a_sales_channel(self) -> _OrderRef:
        if self.channel not in SALES_CHANNELS:
            raise ValueError(f"{self.channel!r} is not a sales channel of this hub")
        return self


class _Package(BaseModel):
    package_id: _Id
    carrier: Annotated[str, Field(max_length=32)] = ""
    tracking_no: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9-]*$")] = ""
    lines: Annotated[list[_PackageLine], Field(max_length=500)] = []
    scanned_at: AwareDatetime
    # An id from the warehouse's user directory, never a person's name.
    operator_id: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.:@-]*$")] = ""


class WmsWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown fields are reported as drift, not refused

    event_id: Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    event_type: Annotated[str, Field(max_length=40)]
    warehouse: Annotated[str, Field(min_length=1, max_length=64)]
    order: _OrderRef | None = None
    order_id: Annotated[str, Field(pattern=r"^oh_[a-z2-7]{24}$")] | None = None
    package: _Package

    @model_validator(mode="after")
    def _names_one_order_and_carries_what_its_type_needs(self) -> WmsWebhook:
        if (self.order is None) == (self.order_id is None):
            raise ValueError("name the order by order {channel, channel_order_id} or by order_id (one of them)")
        if self.event_type == "package.outbound" and not (self.package.carrier and self.package.tracking_no):
            raise ValueError("package.outbound needs package.carrier and package.tracking_no")
        return self


class WmsChannel(Channel):
    name = "wms"
    max_body_bytes = 64 * 1024
    kept_headers = (TIMESTAMP_HEADER, SIGNATURE_HEADER)
    known_fields = KNOWN_FIELDS
    status_map = EVENT_TYPES

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise Unauthorized("missing X-Wms-Signature")
        signed_timestamp(timestamp, "X-Wms-Timestamp", now, settings.timestamp_tolerance_s,
                         settings.timestamp_future_s)
        if not signature.startswith(SIGNATURE_PREFIX):
            raise Unauthorized("X-Wms-Signature must start with sha256=")
        if not constant_time_match([sign(secret, timestamp, request.body) for secret in settings.secrets], signature):
            raise Unauthorized("signature does not match")

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None,
              rules: FieldRules = NO_RULES) -> list[OrderEvent]:
        payload = loads_decimal(body)
        if not isinstance(payload, dict):
            raise Malformed("body must be a JSON object")
        payload, drift = self.prepare(payload, rules)
        event_type = payload.get("event_type")
        if not isinstance(event_type, str) or not event_type.startswith("package."):
            raise Malformed(f"event_type {event_type!r} is not accepted from wms: it reports package scans "
                            "(package.outbound, package.picked, package.packed); ship requests come from "
                            "the sales channel")
        try:
            hook = WmsWebhook.model_validate(payload)
            return [self._normalise(hook, drift)]
        except ValidationError as exc:
            raise Malformed(describe_validation_error(exc)) from None

    def _normalise(self, hook: WmsWebhook, drift: tuple[str, ...]) -> OrderEvent:
        kinds = self.status_map.get(hook.event_type)
        p = hook.package
        event: dict[str, Any] = {
            "channel": hook.order.channel if hook.order else "",
            "channel_order_id": hook.order.channel_order_id if hook.order else "",
            "order_id": hook.order_id or "", "source": self.name, "event_id": hook.event_id,
            "channel_code": hook.event_type, "kinds": kinds or (), "drift": drift,
            "gaps": () if kinds is not None else (f"event_type={hook.event_type}",),
            "event_time": p.scanned_at,
        }
        if hook.event_type == "package.outbound":
            event["outbound"] = {"package_id": p.package_id, "warehouse": hook.warehouse, "carrier": p.carrier,
                                 "tracking_no": p.tracking_no, "lines": [line.model_dump() for line in p.lines]}
            event["shipment"] = {"carrier": p.carrier, "tracking_no": p.tracking_no}
        return OrderEvent.model_validate(event)

    def accepted(self) -> Reply:
        return MALL.accepted()

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return MALL.rejected(rejection)


def client_request(payload: bytes, headers: Mapping[str, str], secret: str, app_key: str,
                   now: datetime) -> tuple[dict[str, str], bytes]:
    """What the warehouse integration sends: the body as is, timestamped and signed."""
    timestamp = str(int(now.timestamp()))
    return ({**{k.lower(): v for k, v in headers.items()}, "content-type": "application/json",
             TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, payload)}, payload)


CHANNEL = WmsChannel()
