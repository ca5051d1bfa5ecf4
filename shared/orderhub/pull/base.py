"""Pulling orders from platforms that do not push (Taobao/Tmall, JD, Pinduoduo): the interface.

A `PullClient` knows one platform's order-list API: how to sign a request, how to page, what
its rate-limit error looks like. The poller (`pull/poller.py`) knows windows and watermarks and
nothing about any platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True)
class Shop:
    """One pulled shop, from the channel's options: options["shops"] = [{"shop_id": ..., "session": ...}]."""

    channel: str
    shop_id: str
    session: str = ""  # the shop's access token (Taobao session, JD/PDD access_token)


@dataclass(frozen=True)
class Page:
    orders: list[bytes]  # one raw JSON document per order, exactly what the channel's parse() takes
    has_next: bool


class PullError(Exception):
    """A call failed (error reply, 5xx, timeout, bad signature): the window is retried, never skipped."""


class RateLimited(PullError):
    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PullClient(Protocol):
    channel: str
    max_window: timedelta  # the platform's limit on end - start of one query
    page_size: int

    def fetch_page(self, shop: Shop, start: datetime, end: datetime, page: int) -> Page: ...
