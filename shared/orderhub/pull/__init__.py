"""Platform API clients for the pulled channels, found by channel name (imported on first use)."""

from __future__ import annotations

import importlib
from typing import Any

# channel -> module exposing CLIENT_CLASS(app_key, secret, base_url, http=None)
PULL_CLIENTS: dict[str, str] = {
    "taobao": "orderhub.pull.taobao",
    "jd": "orderhub.pull.jd",
    "pdd": "orderhub.pull.pdd",
}


def client_class(channel: str) -> Any:
    module = PULL_CLIENTS.get(channel)
    if module is None:
        raise LookupError(f"{channel} is not a pulled channel")
    return importlib.import_module(module).CLIENT_CLASS


def shop_jobs(channel: str, config: Any) -> list[Any]:
    """One poll job per shop of a pulled channel, from its `ChannelSettings`.

    `options.shops` (kept in the channel's secret: sessions are access tokens) lists
    `{"shop_id", "session"}`; `options.base_url` overrides the platform's gateway (a sandbox, or the
    embedded platform locally); `options.page_size` and Taobao's `options.sign_method` pass
    through; the window options are `PollPolicy.from_options`.
    """
    from orderhub.pull.base import Shop
    from orderhub.pull.poller import Job
    from orderhub.pull.windows import PollPolicy

    options = dict(config.options)
    cls = client_class(channel)
    kwargs: dict[str, Any] = {"page_size": int(options.get("page_size", 100))}
    if options.get("base_url"):
        kwargs["base_url"] = str(options["base_url"])
    if channel == "taobao" and options.get("sign_method"):
        kwargs["sign_method"] = str(options["sign_method"])
    client = cls(config.app_key, config.secrets[0], **kwargs)
    policy = PollPolicy.from_options(options)
    return [Job(Shop(channel, str(shop["shop_id"]), str(shop.get("session", ""))), client, policy)
            for shop in options.get("shops") or ()]
