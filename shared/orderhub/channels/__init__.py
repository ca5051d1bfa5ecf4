"""Channel modules, one per platform, and the registry that finds them by name.

Modules are imported on first use so a function only pays for the channels it meets.
"""

from __future__ import annotations

import importlib
from functools import cache

from orderhub.channels.base import Channel

# name in the URL path -> module under orderhub.channels
CHANNEL_MODULES: dict[str, str] = {
    "mall": "orderhub.channels.mall",
}


class UnknownChannel(LookupError):
    pass


@cache
def get_channel(name: str) -> Channel:
    module = CHANNEL_MODULES.get(name)
    if module is None:
        raise UnknownChannel(name)
    return importlib.import_module(module).CHANNEL
