"""The embedded platforms: local Taobao, JD and Pinduoduo for the pulled channels.

Locally there is no Taobao to pull from, as there is no AWS: a pulled channel configured
without `options.base_url` gets a fake platform server (infra/standins/platforms.py) that signs and checks
requests exactly as the platform does, and the configuration handed to the hub points at it.
With a `base_url` (a real gateway, or your own sandbox) nothing is started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from infra.config import HubConfig
from infra.topology import PULL_CHANNELS


def embedded_platforms(config: HubConfig, seed_orders: int = 0,
                       now: datetime | None = None) -> tuple[dict[str, Any], HubConfig]:
    """Start a fake for each pulled channel without a base_url; return them and the re-pointed config.

    `seed_orders` > 0 loads each with that many generated orders modified during the last day.
    """
    from infra.standins.platform_orders import generate_orders
    from infra.standins.platforms import DEFAULT_SESSION, DEFAULT_SHOP, fake_for

    fakes: dict[str, Any] = {}
    channels = dict(config.channels)
    try:
        for name in PULL_CHANNELS:
            channel = channels.get(name)
            if channel is None or channel.options.get("base_url"):
                continue
            shops = channel.secret_options.get("shops") or channel.options.get("shops") \
                or [{"shop_id": DEFAULT_SHOP, "session": DEFAULT_SESSION}]
            fake = fake_for(name, channel.app_key, channel.secrets[0],
                            sessions={s["session"]: s["shop_id"] for s in shops}).start()
            fakes[name] = fake
            if seed_orders:
                start = (now or datetime.now(UTC)) - timedelta(days=1, minutes=10)
                for shop in shops:
                    fake.load(generate_orders(name, seed_orders, start, seed=len(fakes)), shop=shop["shop_id"])
            channels[name] = channel.model_copy(update={"options": {**channel.options, "base_url": fake.url}})
    except BaseException:
        for fake in fakes.values():
            fake.stop()
        raise
    return fakes, config.model_copy(update={"channels": channels})


def stop_platforms(fakes: dict[str, Any]) -> None:
    for fake in fakes.values():
        fake.stop()
