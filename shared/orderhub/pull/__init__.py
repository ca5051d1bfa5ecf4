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
