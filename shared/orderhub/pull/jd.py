"""JOS client: `jingdong.pop.order.enSearch`, signed as the JD open platform signs.

Protocol (sources: JOS dev guide listId=2643 worked example, reproduced in
tests/unit/test_pull_signing.py; lostinfo/jos-open-api jd/request/PopOrderEnSearch.php; JD's
gateway error table as published by ERP vendors):
- POST `https://api.jd.com/routerjson`, form-urlencoded UTF-8.
- System parameters: `method`, `access_token` (the shop's token), `app_key`, `timestamp`
  ("yyyy-MM-dd HH:mm:ss", GMT+8, at most 6 minutes off), `format=json`, `v=2.0`,
  `sign_method=md5`, `sign`; the business parameters are one JSON string, `360buy_param_json`.
- `sign` = upper-case hex MD5(secret + every parameter but `sign`, sorted by name, as name+value
  + secret). `360buy_param_json` sorts first and is signed as the exact string sent.
- Business parameters: `start_date`, `end_date` (at most one month apart), `order_state` (all
  codes, comma-separated), `optional_fields` (required), `page`, `page_size` (<= 100),
  `sortType` (0 ascending), `dateType` (0 = modified time).
- Reply `{"jingdong_pop_order_enSearch_responce": {"code": "0", "searchorderinfo_result":
  {"apiResult": {"success", "englishErrCode", "chineseErrCode", "numberCode"}, "orderTotal",
  "orderInfoList": [...]}}}`; there is no has_next: more pages while page * page_size < orderTotal.
  Gateway errors `{"error_response": {"code", "zh_desc", "en_desc"}}`: code 2 "App Call Limited"
  is a rate limit, 8 invalid timestamp, 12 invalid signature, 19 invalid access_token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from orderhub.pull.base import Page, PullError, RateLimited, Shop
from orderhub.pull.taobao import Http, call_json, compact, http_post, top_time

PRODUCTION_URL = "https://api.jd.com/routerjson"
METHOD = "jingdong.pop.order.enSearch"
RESPONSE_KEY = "jingdong_pop_order_enSearch_responce"  # JD's spelling
RATE_LIMIT_CODES = frozenset({"2"})
ALL_ORDER_STATES = (
    "WAIT_SELLER_STOCK_OUT", "WAIT_GOODS_RECEIVE_CONFIRM", "WAIT_SELLER_DELIVERY", "PAUSE", "FINISHED_L",
    "TRADE_CANCELED", "LOCKED", "POP_ORDER_PAUSE", "WAIT_SEND_CODE", "DELIVERY_RETURN",
)


def sign(params: Mapping[str, str], secret: str) -> str:
    """JOS's signature of a request's parameters (upper-case hex MD5, secret on both ends)."""
    joined = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    return hashlib.md5(f"{secret}{joined}{secret}".encode(), usedforsecurity=False).hexdigest().upper()


class JdClient:
    channel = "jd"
    # JOS allows a month between start_date and end_date; 28 days always fits a calendar month.
    max_window = timedelta(days=28)

    def __init__(self, app_key: str, secret: str, base_url: str = PRODUCTION_URL, http: Http | None = None, *,
                 page_size: int = 100, clock: Callable[[], datetime] | None = None) -> None:
        if not 1 <= page_size <= 100:
            raise ValueError("JOS page_size is 1..100")
        self.app_key, self._secret, self.base_url, self.page_size = app_key, secret, base_url, page_size
        self._http = http or http_post
        self._clock = clock or (lambda: datetime.now(UTC))

    def request_params(self, shop: Shop, start: datetime, end: datetime, page: int) -> dict[str, str]:
        from orderhub.channels.jd import REQUESTED_FIELDS

        if not start < end or end - start > self.max_window:
            raise ValueError(f"JOS needs start_date < end_date, at most {self.max_window.days} days apart here")
        business = {
            "start_date": top_time(start), "end_date": top_time(end), "order_state": ",".join(ALL_ORDER_STATES),
            "optional_fields": ",".join(REQUESTED_FIELDS), "page": str(page), "page_size": str(self.page_size),
            "sortType": "0", "dateType": "0",
        }
        params = {
            "method": METHOD, "access_token": shop.session, "app_key": self.app_key,
            "timestamp": top_time(self._clock()), "format": "json", "v": "2.0", "sign_method": "md5",
            "360buy_param_json": json.dumps(business, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = sign(params, self._secret)
        return params

    def fetch_page(self, shop: Shop, start: datetime, end: datetime, page: int) -> Page:
        body = urlencode(self.request_params(shop, start, end, page)).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8", "Accept": "application/json"}
        reply = call_json(self._http, self.base_url, body, headers, "JOS")
        error = reply.get("error_response")
        if isinstance(error, dict):
            raise _error(error)
        wrapper = reply.get(RESPONSE_KEY)
        if not isinstance(wrapper, dict):
            raise PullError(f"JOS reply has no {RESPONSE_KEY}")
        result = wrapper.get("searchorderinfo_result")
        if not isinstance(result, dict):
            raise PullError(f"JOS reply code {wrapper.get('code')}: no searchorderinfo_result")
        api = result.get("apiResult") or {}
        if api.get("success") is False:
            raise PullError(f"JOS apiResult {api.get('numberCode', '')} {api.get('englishErrCode', '')} "
                            f"{api.get('chineseErrCode', '')}".strip())
        orders = result.get("orderInfoList") or []
        if not isinstance(orders, list):
            raise PullError("JOS reply: orderInfoList is not a list")
        total = int(result.get("orderTotal") or 0)
        return Page(orders=[compact(o) for o in orders], has_next=page * self.page_size < total)


def _error(error: Mapping[str, Any]) -> PullError:
    code = str(error.get("code", ""))
    detail = f"JOS error {code} {error.get('en_desc', '')} {error.get('zh_desc', '')}".strip()
    if code in RATE_LIMIT_CODES:
        return RateLimited(detail, retry_after_s=1.0)
    return PullError(detail)


CLIENT_CLASS = JdClient
