"""Channel modules, one per platform, and the registry that finds them by name.

Modules are imported on first use so a function only pays for the channels it meets.
"""

from __future__ import annotations

import importlib
from functools import cache

from orderhub.channels.base import Channel

# name in the URL path -> module under orderhub.channels
CHANNEL_MODULES: dict[str, str] = {
    # pushed to POST /webhooks/{channel}
    "mall": "orderhub.channels.mall",
    "douyin": "orderhub.channels.douyin",
    "youzan": "orderhub.channels.youzan",
    "shopify": "orderhub.channels.shopify",
    "woocommerce": "orderhub.channels.woocommerce",
    "kuaidi100": "orderhub.channels.kuaidi100",
    "wms": "orderhub.channels.wms",
    # payment providers (PAY-0): their notifications book the payment voucher ledger
    "wechatpay": "orderhub.channels.wechatpay",
    "alipay": "orderhub.channels.alipay",
    # pulled by channel_poller (no webhook route)
    "taobao": "orderhub.channels.taobao",
    "jd": "orderhub.channels.jd",
    "pdd": "orderhub.channels.pdd",
    # CSV files (orderhub import, S3 drop)
    "import": "orderhub.channels.file_import",
    # finance's commands on the ledger (a bank transfer recorded, an entry confirmed or reversed), enqueued
    # by the ledger API and CLI: hub-originated events through the same intake as a channel's
    "finance": "orderhub.channels.finance",
}


class UnknownChannel(LookupError):
    pass


@cache
def get_channel(name: str) -> Channel:
    module = CHANNEL_MODULES.get(name)
    if module is None:
        raise UnknownChannel(name)
    return importlib.import_module(module).CHANNEL
