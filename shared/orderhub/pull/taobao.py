"""TOP client: `taobao.trades.sold.increment.get`, signed as the Taobao Open Platform signs.

Protocol (sources: TOP "API调用方法详解" docId=101617 as mirrored on developer.alibaba.com and
api.1688.com; bububa/opentaobao core/client.go; the TOP Python SDK's `sign_top_request`):
- POST `https://eco.taobao.com/router/rest` (or gw.api.taobao.com), form-urlencoded UTF-8.
- System parameters: `method`, `app_key`, `session` (the shop's token), `timestamp`
  ("yyyy-MM-dd HH:mm:ss", GMT+8, at most 10 minutes off the TOP clock), `format=json`, `v=2.0`,
  `sign_method` (md5 | hmac | hmac-sha256), `sign`.
- `sign`: every parameter but `sign` (and empty values), sorted by name, concatenated as
  name+value; md5 = MD5(secret + s + secret), hmac = HMAC-MD5(secret, s), hmac-sha256 =
  HMAC-SHA256(secret, s); upper-case hex. The published example (secret "helloworld") gives
  66987CB115214E59E6EC978214934FB8 (tests/unit/test_pull_signing.py).
- Business parameters: `fields`, `start_modified`, `end_modified` (at most one day apart),
  `page_no`, `page_size` (1..100), `use_has_next=true` (the reply then carries `has_next`).
- Reply: `{"trades_sold_increment_get_response": {"has_next", "trades": {"trade": [...]}}}`;
  errors `{"error_response": {"code", "msg", "sub_code", "sub_msg"}}`: code 7 "App Call Limited"
  (sub_msg "This ban will last for N more seconds") is a rate limit; 25 invalid signature; 27
  invalid session; anything else fails the call.
- Results are newest `modified` first; TOP advises paging from the last page back so orders
  modified during the paging cannot slip between pages (the poller's concern: its windows end in
  the past, so a window's content only shrinks while it is paged).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import urlencode, urlsplit

from orderhub.pull.base import Page, PullError, RateLimited, Shop

PRODUCTION_URL = "https://eco.taobao.com/router/rest"
METHOD = "taobao.trades.sold.increment.get"
RESPONSE_KEY = "trades_sold_increment_get_response"
CST = timezone(timedelta(hours=8))
SIGN_METHODS = ("md5", "hmac", "hmac-sha256")
RATE_LIMIT_CODES = frozenset({7})
_BAN = re.compile(r"(\d+)\s*more seconds")

Http = Callable[[str, bytes, Mapping[str, str]], tuple[int, bytes]]
MAX_REPLY_BYTES = 32 * 1024 * 1024


def http_post(url: str, body: bytes, headers: Mapping[str, str], connect_timeout_s: float = 5.0,
              read_timeout_s: float = 30.0) -> tuple[int, bytes]:
    """POST with separate connect and read timeouts (standard library only)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    connection = (HTTPSConnection if parts.scheme == "https" else HTTPConnection)(
        parts.hostname, parts.port, timeout=connect_timeout_s)
    try:
        connection.connect()
        if connection.sock is not None:
            connection.sock.settimeout(read_timeout_s)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return response.status, response.read(MAX_REPLY_BYTES)
    finally:
        connection.close()


def sign(params: Mapping[str, str], secret: str, sign_method: str = "md5") -> str:
    """TOP's signature of a request's parameters (upper-case hex)."""
    joined = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    if sign_method == "md5":
        digest = hashlib.md5(f"{secret}{joined}{secret}".encode(), usedforsecurity=False).hexdigest()
    elif sign_method == "hmac":
        digest = hmac.new(secret.encode(), joined.encode(), hashlib.md5).hexdigest()
    elif sign_method == "hmac-sha256":
        digest = hmac.new(secret.encode(), joined.encode(), hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"unknown TOP sign_method {sign_method!r}")
    return digest.upper()


def top_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime")
    return at.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


class TaobaoClient:
    channel = "taobao"
    max_window = timedelta(days=1)

    def __init__(self, app_key: str, secret: str, base_url: str = PRODUCTION_URL, http: Http | None = None, *,
                 page_size: int = 100, sign_method: str = "hmac-sha256",
                 clock: Callable[[], datetime] | None = None) -> None:
        if not 1 <= page_size <= 100:
            raise ValueError("TOP page_size is 1..100")
        if sign_method not in SIGN_METHODS:
            raise ValueError(f"sign_method must be one of {SIGN_METHODS}")
        self.app_key, self._secret, self.base_url = app_key, secret, base_url
        self.page_size, self.sign_method = page_size, sign_method
        self._http = http or http_post
        self._clock = clock or (lambda: datetime.now(UTC))

    def request_params(self, shop: Shop, start: datetime, end: datetime, page: int) -> dict[str, str]:
        """Every parameter of one page's call, signed."""
        from orderhub.channels.taobao import REQUESTED_FIELDS

        if not start < end or end - start > self.max_window:
            raise ValueError("TOP needs start_modified < end_modified, at most one day apart")
        params = {
            "method": METHOD, "app_key": self.app_key, "session": shop.session, "timestamp": top_time(self._clock()),
            "format": "json", "v": "2.0", "sign_method": self.sign_method,
            "fields": ",".join(REQUESTED_FIELDS), "start_modified": top_time(start), "end_modified": top_time(end),
            "page_no": str(page), "page_size": str(self.page_size), "use_has_next": "true",
        }
        params["sign"] = sign(params, self._secret, self.sign_method)
        return params

    def fetch_page(self, shop: Shop, start: datetime, end: datetime, page: int) -> Page:
        body = urlencode(self.request_params(shop, start, end, page)).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8", "Accept": "application/json"}
        reply = call_json(self._http, self.base_url, body, headers, "TOP")
        error = reply.get("error_response")
        if isinstance(error, dict):
            raise _error(error)
        result = reply.get(RESPONSE_KEY)
        if not isinstance(result, dict):
            raise PullError(f"TOP reply has no {RESPONSE_KEY}")
        trades = (result.get("trades") or {}).get("trade") or []
        if not isinstance(trades, list):
            raise PullError("TOP reply: trades.trade is not a list")
        has_next = result.get("has_next")
        if not isinstance(has_next, bool):
            has_next = int(result.get("total_results") or 0) > page * self.page_size
        return Page(orders=[compact(t) for t in trades], has_next=has_next)


def _error(error: Mapping[str, Any]) -> PullError:
    code, msg = error.get("code"), error.get("msg", "")
    detail = f"TOP error {code} {msg}"
    if error.get("sub_code") or error.get("sub_msg"):
        detail += f" ({error.get('sub_code', '')}: {error.get('sub_msg', '')})"
    if _int(code) in RATE_LIMIT_CODES:
        ban = _BAN.search(str(error.get("sub_msg", "")))
        return RateLimited(detail, retry_after_s=float(ban.group(1)) if ban else 1.0)
    return PullError(detail)


def call_json(http: Http, url: str, body: bytes, headers: Mapping[str, str], platform: str) -> dict[str, Any]:
    """One HTTP call; anything but a JSON object in a 200 reply fails the page."""
    try:
        status, raw = http(url, body, headers)
    except (OSError, HTTPException, ValueError) as exc:
        raise PullError(f"{platform} call failed: {type(exc).__name__}: {exc}") from None
    if status != 200:
        raise PullError(f"{platform} replied HTTP {status}")
    try:
        reply = json.loads(raw)
    except ValueError:
        raise PullError(f"{platform} reply is not JSON") from None
    if not isinstance(reply, dict):
        raise PullError(f"{platform} reply is not a JSON object")
    return reply


def compact(document: Any) -> bytes:
    """One order document as the channel's parse() takes it (JSON, UTF-8, numbers as sent)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


CLIENT_CLASS = TaobaoClient
