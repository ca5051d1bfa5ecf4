"""Each push channel's payload shape, as a template a hostile test can splice raw JSON text into.

A template is the first request a channel's stories send. `inner` is the JSON object the channel's
parser reads order fields from (Douyin: a message's `data` string; Youzan: the URL-encoded `msg`;
kuaidi100: the `param` form field; the rest: the body). Raw JSON text is spliced in, not built with
json.dumps, so that what a JSON encoder never writes (duplicate keys, lone surrogate escapes,
1e400) reaches the hub as a hostile client would send it; the request is then signed correctly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from infra.demo.traffic import load_channel_stories

PUSH_CHANNELS = ("mall", "douyin", "youzan", "shopify", "woocommerce", "kuaidi100", "wms")

# Where each channel keeps an identity, a money amount and a time in `inner` (dotted; an int is a list index).
IDENTITY_FIELDS = {
    "mall": ("event_id", "order.order_no", "shop_id"), "douyin": ("p_id", "shop_id"),
    "youzan": ("full_order_info.order_info.tid",), "shopify": ("id", "line_items.0.sku"),
    "woocommerce": ("id", "line_items.0.sku"), "kuaidi100": ("lastResult.nu", "lastResult.com"),
    "wms": ("event_id", "order_id", "package.package_id"),
}
AMOUNT_FIELDS = {
    "mall": ("order.total_amount", "order.lines.0.unit_price", "order.lines.0.quantity"),
    "douyin": ("order_status", "create_time"), "youzan": ("full_order_info.pay_info.payment",
                                                          "full_order_info.orders.0.num"),
    "shopify": ("total_price", "line_items.0.price", "line_items.0.quantity"),
    "woocommerce": ("total", "line_items.0.price", "line_items.0.quantity"),
    "kuaidi100": ("lastResult.state",), "wms": ("package.carrier",),
}
TIME_FIELDS = {
    "mall": ("event_time",), "douyin": ("create_time",), "youzan": ("full_order_info.order_info.update_time",),
    "shopify": ("updated_at", "created_at"), "woocommerce": ("date_modified_gmt", "date_created_gmt"),
    "kuaidi100": ("lastResult.data.0.ftime",), "wms": ("package.scanned_at",),
}

_HOLE = "hostile-value-goes-here"


@dataclass(frozen=True)
class Template:
    channel: str
    headers: dict[str, str]
    outer: Any  # the request's JSON value around `inner`
    inner: dict[str, Any]

    def body_with(self, value_at: str | None = None, value_json: str = "null", members: str = "") -> bytes:
        """The payload with the field at `value_at` set to the raw JSON text `value_json`, and the raw
        members text `members` (`"k": v, ...`) added at the end of `inner`."""
        inner = json.loads(json.dumps(self.inner))
        if value_at is not None:
            _put(inner, value_at, _HOLE)
        text = json.dumps(inner, ensure_ascii=False)
        if value_at is not None:
            text = text.replace(json.dumps(_HOLE), value_json)
        if members:
            text = text[:-1] + ", " + members + "}"
        return self.wrap(text)

    def wrap(self, inner_text: str) -> bytes:
        if self.channel == "douyin":
            message = {**self.outer[0], "data": inner_text}
            return json.dumps([message], ensure_ascii=False).encode("utf-8", "surrogatepass")
        if self.channel == "youzan":
            msg = quote_plus(inner_text.encode("utf-8", "surrogatepass"))
            return json.dumps({**self.outer, "msg": msg}, ensure_ascii=False).encode()
        return inner_text.encode("utf-8", "surrogatepass")


def _put(value: Any, path: str, new: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        value = value[int(part)] if part.isdigit() else value.setdefault(part, {})
    if last.isdigit():
        value[int(last)] = new
    else:
        value[last] = new


@cache
def template(channel: str) -> Template:
    request = next(r for s in load_channel_stories(channel) for r in s.requests if r.channel == channel)
    outer = json.loads(request.payload)
    if channel == "douyin":
        inner = json.loads(outer[0]["data"])
    elif channel == "youzan":
        inner = json.loads(unquote_plus(outer["msg"]))
    else:
        inner = outer
    return Template(channel, dict(request.headers), outer, inner)


def signed(config: Any, channel: str, payload: bytes, now: datetime) -> tuple[dict[str, str], bytes]:
    """Headers and body as the platform sends `payload`, signed with the configured secret."""
    from orderhub.channels import get_channel

    module = __import__(type(get_channel(channel)).__module__, fromlist=["client_request"])
    settings = config.channels[channel]
    if channel == "woocommerce":
        # Its client re-encodes the body as PHP would (json.loads first): sign the hostile text as it is.
        headers, _ = module.client_request(b"{}", template(channel).headers, settings.secrets[0], "", now)
        return {**headers, module.SIGNATURE_HEADER: module.sign(settings.secrets[0], payload)}, payload
    return module.client_request(payload, template(channel).headers, settings.secrets[0], settings.app_key, now)
