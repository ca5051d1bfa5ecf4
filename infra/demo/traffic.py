"""Sample traffic for the demo, the tests and the benchmarks: stored stories, signing, synthesis.

Not shipped to Lambda. Channels sign here exactly as a real shop would, with the secrets from
the hub configuration, so what reaches the hub is indistinguishable from real traffic.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from infra.config import REPO_ROOT, HubConfig

EVENTS_DIR = REPO_ROOT / "events"


@dataclass(frozen=True)
class Story:
    order_no: str
    story: str
    expect: dict[str, str]
    events: list[dict[str, Any]]


def load_stories(channel: str = "mall") -> list[Story]:
    stories = []
    for path in sorted((EVENTS_DIR / channel / "orders").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        stories.append(Story(data["order_no"], data["story"], data["expect"], data["events"]))
    return stories


@dataclass(frozen=True)
class ChannelRequest:
    channel: str
    headers: dict[str, str]
    payload: bytes  # what the platform signs (for kuaidi100 the `param` JSON; the module forms the body)


@dataclass(frozen=True)
class ChannelStory:
    """One order's life as the platforms send it: events/<channel>/stories/<name>.json."""

    name: str
    story: str
    expect: dict[str, Any]
    requests: list[ChannelRequest]


def load_channel_stories(channel: str) -> list[ChannelStory]:
    stories = []
    for old in load_stories(channel) if (EVENTS_DIR / channel / "orders").is_dir() else ():
        # The skeleton's mall stories: one file per order, events in shop order.
        stories.append(ChannelStory(f"{channel}/{old.order_no}", old.story,
                                    {"channel": channel, "channel_order_id": old.order_no, **old.expect},
                                    [ChannelRequest(channel, {}, encode(e)) for e in old.events]))
    for path in sorted((EVENTS_DIR / channel / "stories").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "requests" not in data:
            continue  # pulled channels keep snapshot stories (see their README)
        requests = [ChannelRequest(r["channel"], dict(r.get("headers", {})),
                                   r["payload"].encode() if isinstance(r["payload"], str) else encode(r["payload"]))
                    for r in data["requests"]]
        stories.append(ChannelStory(f"{channel}/{path.stem}", data["story"], data["expect"], requests))
    return stories


def signed_request(config: HubConfig, request: ChannelRequest, now: datetime | None = None,
                   secret: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as the platform would send `request`, signed with the configured secret."""
    from orderhub.channels import get_channel

    module = __import__(type(get_channel(request.channel)).__module__, fromlist=["client_request"])
    channel = config.channels[request.channel]
    return module.client_request(request.payload, request.headers, secret or channel.secrets[0], channel.app_key,
                                 now or datetime.now(UTC))


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def mall_headers(secret: str, body: bytes, at: float | None = None) -> dict[str, str]:
    from orderhub.channels.mall import sign

    timestamp = str(int(time.time() if at is None else at))
    return {"Content-Type": "application/json", "X-Mall-Timestamp": timestamp,
            "X-Mall-Signature": sign(secret, timestamp, body)}


def mall_secret(config: HubConfig) -> str:
    return config.channels["mall"].secrets[0]


_CST = timezone(timedelta(hours=8))
_SKUS = [("TEA-LJ-250", "明前龙井 250g", 12900), ("TEA-BLC-100", "碧螺春 100g", 6800),
         ("CUP-CELADON-2", "青瓷茶杯两只装", 8800), ("GIFT-SET-A", "茶礼盒 A", 39900)]
_REGIONS = [("浙江省", "杭州市"), ("广东省", "深圳市"), ("北京市", "北京市"), ("四川省", "成都市")]


def synthetic_mall_order(index: int, rng: random.Random, start: datetime | None = None) -> list[dict[str, Any]]:
    """One order's events in the shop's order: created, paid, shipped, delivered (some refunded)."""
    start = start or datetime(2026, 11, 21, 9, 0, tzinfo=_CST)
    no = f"S{start:%Y%m%d}{index:07d}"
    at = start + timedelta(seconds=index * 7)
    sku, name, price = rng.choice(_SKUS)
    qty = rng.randint(1, 3)
    province, city = rng.choice(_REGIONS)
    total = qty * price
    shop = f"mini-{rng.randint(1, 4):02d}"

    def event(n: int, kind: str, minutes: int, **order: Any) -> dict[str, Any]:
        return {"event_id": f"evt_{no}_{n:02d}", "event_type": kind,
                "event_time": (at + timedelta(minutes=minutes)).isoformat(), "shop_id": shop,
                "order": {"order_no": no, **order}}

    events = [
        event(1, "order.created", 0, currency="CNY", total_amount=total,
              lines=[{"sku": sku, "name": name, "quantity": qty, "unit_price": price}],
              receiver={"name": "测试", "phone": f"139{rng.randint(0, 99_999_999):08d}",
                        "province": province, "city": city, "address": "测试路 1 号"}),
        event(2, "order.paid", 2, payment={"transaction_id": f"42{index:018d}", "method": "wechat_pay",
                                           "amount": total}),
        event(3, "order.shipped", 180, shipment={"carrier": "SF", "tracking_no": f"SF{index:013d}"}),
        event(4, "order.delivered", 1800),
    ]
    if index % 10 == 0:
        events.append(event(5, "order.refunded", 2000, refund={"refund_id": f"RF{no}", "amount": total,
                                                               "reason": "return received"}))
    return events


def synthetic_mall_events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` events over whole orders (4-5 events each), in the shop's order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
    events: list[dict[str, Any]] = []
    index = 0
    while len(events) < count:
        index += 1
        events.extend(synthetic_mall_order(index, rng))
    return events[:count]


def read_path(path: Path) -> list[dict[str, Any]]:
    """A file of events: a story file or a JSON list of events."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["events"] if isinstance(data, dict) else data
