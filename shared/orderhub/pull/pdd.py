"""Pinduoduo client: `pdd.order.number.list.increment.get`, signed as the platform signs.

Protocol (sources: Pinduoduo open platform "API调用" doc idStr=8EC06C399636041E, whose worked
example is reproduced in tests/unit/test_pull_signing.py; niltor/open-pdd-net-sdk request and
response models; Cherrs/pdd-rs; the platform's public error-code table):
- POST `https://gw-api.pinduoduo.com/api/router`, `Content-Type: application/json`, one flat
  JSON object of system and business parameters.
- System parameters: `type` (the API), `client_id`, `access_token` (the shop's token),
  `timestamp` (Unix seconds, at most 10 minutes off), `data_type=JSON`, `sign`.
- `sign` = upper-case hex MD5(client_secret + every parameter but `sign`, sorted by name, as
  name+value + client_secret). Values are sent as the same strings that were signed.
- Business parameters: `is_lucky_flag=0`, `order_status=5`, `refund_status=5` (all),
  `start_updated_at`/`end_updated_at` (Unix seconds, at most 30 minutes apart), `page`,
  `page_size` (<= 100), `use_has_next=true`.
- Reply `{"order_sn_increment_get_response": {"total_count", "has_next", "order_sn_list": [...]}}`;
  errors `{"error_response": {"error_code", "error_msg", "sub_code", "sub_msg", "request_id"}}`:
  70031 and 52101 (called too often / throttled) are rate limits; 20004 invalid signature;
  10019 expired access_token; anything else fails the call.
- The platform advises an end no later than 3 minutes before its clock, and paging from the last
  page back (the poller's concern).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from orderhub.pull.base import Page, PullError, RateLimited, Shop
from orderhub.pull.taobao import Http, call_json, compact, http_post

PRODUCTION_URL = "https://gw-api.pinduoduo.com/api/router"
METHOD = "pdd.order.number.list.increment.get"
RESPONSE_KEY = "order_sn_increment_get_response"
RATE_LIMIT_CODES = frozenset({70031, 52101})


def sign(params: Mapping[str, str], secret: str) -> str:
    """Pinduoduo's signature of a request's parameters (upper-case hex MD5, secret on both ends)."""
    joined = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return hashlib.md5(f"{secret}{joined}{secret}".encode(), usedforsecurity=False).hexdigest().upper()


def unix_seconds(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime")
    return str(int(at.timestamp()))


class PddClient:
    channel = "pdd"
    max_window = timedelta(minutes=30)
    # "结束时间不小于拼多多系统时间前3min": a window ends at least 3 minutes before the platform's clock.
    min_settle = timedelta(minutes=3)

    def __init__(self, app_key: str, secret: str, base_url: str = PRODUCTION_URL, http: Http | None = None, *,
                 page_size: int = 100, clock: Callable[[], datetime] | None = None) -> None:
        if not 1 <= page_size <= 100:
            raise ValueError("Pinduoduo page_size is 1..100")
        self.app_key, self._secret, self.base_url, self.page_size = app_key, secret, base_url, page_size
        self._http = http or http_post
        self._clock = clock or (lambda: datetime.now(UTC))

    def request_params(self, shop: Shop, start: datetime, end: datetime, page: int) -> dict[str, str]:
        if not start < end or end - start > self.max_window:
            raise ValueError("Pinduoduo needs start_updated_at < end_updated_at, at most 30 minutes apart")
        params = {
            "type": METHOD, "client_id": self.app_key, "access_token": shop.session,
            "timestamp": unix_seconds(self._clock()), "data_type": "JSON",
            "is_lucky_flag": "0", "order_status": "5", "refund_status": "5",
            "start_updated_at": unix_seconds(start), "end_updated_at": unix_seconds(end),
            "page": str(page), "page_size": str(self.page_size), "use_has_next": "true",
        }
        params["sign"] = sign(params, self._secret)
        return params

    def fetch_page(self, shop: Shop, start: datetime, end: datetime, page: int) -> Page:
        body = json.dumps(self.request_params(shop, start, end, page), separators=(",", ":")).encode()
        reply = call_json(self._http, self.base_url, body, {"Content-Type": "application/json"}, "Pinduoduo")
        error = reply.get("error_response")
        if isinstance(error, dict):
            raise _error(error)
        result = reply.get(RESPONSE_KEY)
        if not isinstance(result, dict):
            raise PullError(f"Pinduoduo reply has no {RESPONSE_KEY}")
        orders = result.get("order_sn_list") or []
        if not isinstance(orders, list):
            raise PullError("Pinduoduo reply: order_sn_list is not a list")
        has_next = result.get("has_next")
        if not isinstance(has_next, bool):
            has_next = int(result.get("total_count") or 0) > page * self.page_size
        return Page(orders=[compact(o) for o in orders], has_next=has_next)


def _error(error: Mapping[str, Any]) -> PullError:
    code = error.get("error_code")
    detail = f"Pinduoduo error {code} {error.get('error_msg', '')}"
    if error.get("sub_code") or error.get("sub_msg"):
        detail += f" ({error.get('sub_code', '')}: {error.get('sub_msg', '')})"
    try:
        limited = int(code) in RATE_LIMIT_CODES  # type: ignore[arg-type]
    except (TypeError, ValueError):
        limited = False
    if limited:
        return RateLimited(detail, retry_after_s=1.0)
    return PullError(detail)


CLIENT_CLASS = PddClient
