"""Local stand-ins for the Taobao (TOP), JD (JOS) and Pinduoduo order APIs.

Each fake holds its shops' orders (one current snapshot per order, newest write wins, as on the
real platform), listens on a local port (`ThreadingHTTPServer`) at the platform's endpoint path,
and answers the order-list call the hub's clients make:
- it verifies the request as the platform does (app key, the shop's token, the timestamp window,
  the signature recomputed with the platform's recipe) and answers a failure with the
  platform's own error body;
- it enforces the platform's limits (query window, page size) and serves the orders whose
  modified time falls in the window (both ends inclusive), in the platform's order, one page at
  a time, in the platform's reply shape;
- optionally it rate-limits (N calls per second -> the platform's rate-limit error) and fails
  every call whose window overlaps a configured range (HTTP 503), so a poller can be shown to
  keep its watermark on a failed poll.

Error codes and messages: TOP 7/25/27 and JOS 2/8/12/19 and Pinduoduo 20004/70031/10019 are as
published (see the client modules in shared/orderhub/pull/); the codes used for a stale TOP
timestamp (31), an invalid TOP argument (41), a Pinduoduo parameter error (10000) and JOS's
window-too-long reply are this fake's best reading (noted in /tmp/notes/pull.md).
"""

from __future__ import annotations

import bisect
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.standins.platform_orders import FORMAT, generate_orders, modified_of, order_id_of
from orderhub.pull import jd as jd_client
from orderhub.pull import pdd as pdd_client
from orderhub.pull import taobao as taobao_client

CST = timezone(timedelta(hours=8))
DEFAULT_SESSION = "fake-shop-session"
DEFAULT_SHOP = "fake-shop"

Reply = tuple[int, dict[str, Any] | None]


def encode(document: Any) -> bytes:
    """JSON as the platforms send it: UTF-8, money that was Decimal written as a JSON number."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"),
                      default=lambda v: float(v) if isinstance(v, Decimal) else str(v)).encode()


class FakePlatform:
    """What the three fakes share: storage, the HTTP server, rate limits, failing windows, a call log."""

    channel = ""
    path = "/"
    max_window = timedelta(days=1)
    max_page_size = 100

    def __init__(self, app_key: str, secret: str, sessions: Mapping[str, str] | None = None, *,
                 rate_limit_per_s: int | None = None, clock: Callable[[], datetime] | None = None,
                 timestamp_tolerance_s: int = 600) -> None:
        self.app_key, self.secret = app_key, secret
        self.sessions = dict(sessions or {DEFAULT_SESSION: DEFAULT_SHOP})  # token -> shop
        self.rate_limit_per_s = rate_limit_per_s
        self.clock = clock or (lambda: datetime.now(UTC))
        self.timestamp_tolerance_s = timestamp_tolerance_s
        self._orders: dict[str, dict[str, tuple[datetime, dict[str, Any]]]] = {s: {} for s in self.sessions.values()}
        self._sorted: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}  # per shop, oldest first
        self._failing: list[list[Any]] = []  # [start, end, remaining failures or None]
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self.requests: list[dict[str, str]] = []  # every call's parameters, in arrival order
        self.replies: list[int] = []  # HTTP status of every call
        self._server: ThreadingHTTPServer | None = None

    # Orders -------------------------------------------------------------------------------

    def put(self, order: Mapping[str, Any], shop: str = DEFAULT_SHOP) -> None:
        """Store an order's current snapshot (replacing the one it had)."""
        doc = dict(order)
        with self._lock:
            self._orders.setdefault(shop, {})[order_id_of(self.channel, doc)] = (modified_of(self.channel, doc), doc)
            self._sorted.pop(shop, None)

    def load(self, orders: Iterable[Mapping[str, Any]], shop: str = DEFAULT_SHOP) -> None:
        for order in orders:
            self.put(order, shop)

    def orders(self, shop: str = DEFAULT_SHOP) -> list[tuple[datetime, dict[str, Any]]]:
        """(modified time, order document) of every order of the shop, oldest first."""
        with self._lock:
            if shop not in self._sorted:
                self._sorted[shop] = sorted(self._orders.get(shop, {}).values(),
                                            key=lambda pair: (pair[0], order_key(pair[1])))
            return self._sorted[shop]

    def fail_window(self, start: datetime, end: datetime, times: int | None = None) -> None:
        """Calls whose window overlaps [start, end] fail with HTTP 503 (`times` calls, or until `heal`)."""
        with self._lock:
            self._failing.append([start, end, times])

    def heal(self) -> None:
        with self._lock:
            self._failing.clear()

    # Server -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake platform not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def start(self) -> FakePlatform:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length))

            def do_GET(self) -> None:  # noqa: N802
                self._answer(b"")

            def _answer(self, body: bytes) -> None:
                parts = urlsplit(self.path)
                if parts.path != platform.path:
                    status, reply = 404, None
                else:
                    status, reply = platform.handle(dict(parse_qsl(parts.query)), body,
                                                    self.headers.get("Content-Type", ""))
                payload = encode(reply) if reply is not None else b"Service Unavailable"
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8" if reply is not None
                                 else "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: tests read `requests` instead

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"fake-{self.channel}",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # One call -----------------------------------------------------------------------------

    def handle(self, query: Mapping[str, str], body: bytes, content_type: str) -> Reply:
        params = dict(query)
        params.update(self.read_body(body, content_type))
        with self._lock:
            self.requests.append(params)
        status, reply = self.answer(params)
        with self._lock:
            self.replies.append(status)
        return status, reply

    def read_body(self, body: bytes, content_type: str) -> dict[str, str]:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)) if body else {}

    def answer(self, params: dict[str, str]) -> Reply:
        raise NotImplementedError

    def rate_limited(self) -> bool:
        if not self.rate_limit_per_s:
            return False
        now = time.monotonic()
        with self._lock:
            while self._calls and self._calls[0] <= now - 1.0:
                self._calls.popleft()
            if len(self._calls) >= self.rate_limit_per_s:
                return True
            self._calls.append(now)
            return False

    def failing(self, start: datetime, end: datetime) -> bool:
        with self._lock:
            for rule in self._failing:
                if start <= rule[1] and rule[0] <= end and (rule[2] is None or rule[2] > 0):
                    if rule[2] is not None:
                        rule[2] -= 1
                    return True
        return False

    def skew_s(self, at: datetime) -> float:
        return abs((self.clock() - at).total_seconds())

    def select(self, shop: str, start: datetime, end: datetime, newest_first: bool) -> list[dict[str, Any]]:
        ordered = self.orders(shop)
        first = bisect.bisect_left(ordered, start, key=lambda pair: pair[0])
        last = bisect.bisect_right(ordered, end, key=lambda pair: pair[0])
        chosen = [doc for _, doc in ordered[first:last]]
        return chosen[::-1] if newest_first else chosen


def order_key(doc: Mapping[str, Any]) -> str:
    return str(doc.get("tid_str") or doc.get("orderId") or doc.get("order_sn"))


def _request_id() -> str:
    return uuid.uuid4().hex[:13]


def _cst(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, FORMAT).replace(tzinfo=CST)
    except (TypeError, ValueError):
        return None


def _page_slice(docs: list[dict[str, Any]], page: int, size: int) -> tuple[list[dict[str, Any]], bool]:
    chunk = docs[(page - 1) * size: page * size]
    return chunk, page * size < len(docs)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


class FakeTaobao(FakePlatform):
    """TOP's `taobao.trades.sold.increment.get` at `/router/rest`."""

    channel = "taobao"
    path = "/router/rest"
    max_window = timedelta(days=1)

    @staticmethod
    def error(code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> Reply:
        error: dict[str, Any] = {"code": code, "msg": msg}
        if sub_code:
            error |= {"sub_code": sub_code, "sub_msg": sub_msg}
        return 200, {"error_response": {**error, "request_id": _request_id()}}

    def answer(self, params: dict[str, str]) -> Reply:
        if self.rate_limited():
            return self.error(7, "App Call Limited", "accesscontrol.limited-by-api-access-count",
                              "This ban will last for 1 more seconds")
        if not params.get("method"):
            return self.error(21, "Missing method")
        if params.get("app_key") != self.app_key:
            return self.error(29, "Invalid app Key")
        if not params.get("sign"):
            return self.error(24, "Missing signature")
        method = params.get("sign_method", "")
        if method not in taobao_client.SIGN_METHODS:
            return self.error(41, "Invalid arguments", "isv.invalid-parameter", "sign_method")
        if taobao_client.sign(params, self.secret, method) != params["sign"]:
            return self.error(25, "Invalid signature")
        stamp = _cst(params.get("timestamp", ""))
        if stamp is None or self.skew_s(stamp) > self.timestamp_tolerance_s:
            return self.error(31, "Invalid timestamp")
        shop = self.sessions.get(params.get("session", ""))
        if shop is None:
            return self.error(27, "Invalid session", "invalid-sessionkey", "SessionKey非法")
        if params["method"] != taobao_client.METHOD:
            return self.error(22, "Invalid method")
        start, end = _cst(params.get("start_modified", "")), _cst(params.get("end_modified", ""))
        if start is None or end is None or not start < end or end - start > self.max_window:
            return self.error(41, "Invalid arguments", "isv.invalid-parameter",
                              "start_modified/end_modified: end after start, at most one day apart")
        page, size = _int(params.get("page_no", "1")), _int(params.get("page_size", "40"))
        if page is None or size is None or page < 1 or not 1 <= size <= self.max_page_size:
            return self.error(41, "Invalid arguments", "isv.invalid-parameter", "page_no/page_size")
        if self.failing(start, end):
            return 503, None
        fields = {f.strip() for f in params.get("fields", "").split(",") if f.strip()}
        chunk, more = _page_slice(self.select(shop, start, end, newest_first=True), page, size)
        trades = [{k: v for k, v in doc.items() if k in fields} for doc in chunk]
        result: dict[str, Any] = {"request_id": _request_id()}
        if params.get("use_has_next") == "true":
            result["has_next"] = more
        else:
            result["total_results"] = len(self.select(shop, start, end, newest_first=True))
        if trades:
            result["trades"] = {"trade": trades}
        return 200, {taobao_client.RESPONSE_KEY: result}


class FakeJd(FakePlatform):
    """JOS's `jingdong.pop.order.enSearch` (and `.search`) at `/routerjson`."""

    channel = "jd"
    path = "/routerjson"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp_tolerance_s", 360)  # JOS: 6 minutes
        super().__init__(*args, **kwargs)

    @staticmethod
    def error(code: str, zh: str, en: str) -> Reply:
        return 200, {"error_response": {"code": code, "zh_desc": zh, "en_desc": en}}

    @staticmethod
    def api_failure(method: str, zh: str, en: str) -> Reply:
        key = f"{method.replace('.', '_')}_responce"
        return 200, {key: {"code": "0", "searchorderinfo_result": {
            "apiResult": {"success": False, "englishErrCode": en, "chineseErrCode": zh}, "orderTotal": 0}}}

    def answer(self, params: dict[str, str]) -> Reply:
        if self.rate_limited():
            return self.error("2", "限制时间内调用失败次数", "App Call Limited")
        if params.get("app_key") != self.app_key:
            return self.error("18", "无效的app_key", "Invalid app_key")  # code per JOS table (see notes)
        if not params.get("sign"):
            return self.error("11", "缺少签名参数", "Missing Signature")
        if jd_client.sign(params, self.secret) != params["sign"]:
            return self.error("12", "无效签名", "Invalid Signature")
        stamp = _cst(params.get("timestamp", "")[:19])
        if stamp is None or self.skew_s(stamp) > self.timestamp_tolerance_s:
            return self.error("8", "非法的时间戳参数", "Invalid Timestamp")
        shop = self.sessions.get(params.get("access_token", ""))
        if shop is None:
            return self.error("19", "无效access_token", "Invalid access_token")
        method = params.get("method", "")
        if method not in (jd_client.METHOD, "jingdong.pop.order.search"):
            return self.error("15", "不存在的方法名", "Invalid Method")
        try:
            business = json.loads(params.get("360buy_param_json", "{}"))
        except ValueError:
            return self.api_failure(method, "业务参数不是合法的JSON", "invalid 360buy_param_json")
        start, end = _cst(str(business.get("start_date", ""))), _cst(str(business.get("end_date", "")))
        if start is None or end is None or not start < end or end > _add_month(start):
            return self.api_failure(method, "开始时间和结束时间，不得相差超过1个月", "date range over one month")
        if not business.get("optional_fields"):
            return self.api_failure(method, "optional_fields不能为空", "optional_fields required")
        page, size = _int(str(business.get("page", "1"))), _int(str(business.get("page_size", "20")))
        if page is None or size is None or page < 1 or not 1 <= size <= self.max_page_size:
            return self.api_failure(method, "分页参数错误", "page/page_size out of range")
        if self.failing(start, end):
            return 503, None
        states = {s for s in str(business.get("order_state", "")).split(",") if s}
        fields = {f for f in str(business.get("optional_fields", "")).split(",") if f} | {"orderId"}
        newest_first = str(business.get("sortType", "0")) == "1"
        if str(business.get("dateType", "0")) == "1":  # by creation time; 0 and anything else: modified time
            docs = [doc for _, doc in self.orders(shop) if start <= (_cst(doc["orderStartTime"]) or start) <= end]
        else:
            docs = self.select(shop, start, end, newest_first)
        docs = [doc for doc in docs if not states or doc["orderState"] in states]
        chunk, _ = _page_slice(docs, page, size)
        result = {"apiResult": {"success": True}, "orderTotal": len(docs),
                  "orderInfoList": [{k: v for k, v in doc.items() if k in fields} for doc in chunk]}
        return 200, {f"{method.replace('.', '_')}_responce": {"code": "0", "searchorderinfo_result": result}}


def _add_month(at: datetime) -> datetime:
    month = at.month % 12 + 1
    year = at.year + (at.month == 12)
    for day in (at.day, 30, 29, 28):
        try:
            return at.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return at + timedelta(days=28)


class FakePdd(FakePlatform):
    """Pinduoduo's `pdd.order.number.list.increment.get` at `/api/router`."""

    channel = "pdd"
    path = "/api/router"
    max_window = timedelta(minutes=30)

    @staticmethod
    def error(code: int, msg: str) -> Reply:
        return 200, {"error_response": {"error_code": code, "error_msg": msg, "sub_code": str(code), "sub_msg": msg,
                                        "request_id": _request_id()}}

    def read_body(self, body: bytes, content_type: str) -> dict[str, str]:
        if not body:
            return {}
        if "json" in content_type:
            try:
                document = json.loads(body)
            except ValueError:
                return {"__malformed__": "1"}
            if not isinstance(document, dict):
                return {"__malformed__": "1"}
            return {k: _text(v) for k, v in document.items()}
        return super().read_body(body, content_type)

    def answer(self, params: dict[str, str]) -> Reply:
        if params.pop("__malformed__", None):
            return self.error(10000, "参数错误: 请求体不是JSON对象")
        if self.rate_limited():
            return self.error(70031, "调用过于频繁，请调整调用频率")
        if params.get("client_id") != self.app_key:
            return self.error(10001, "client_id不存在")  # code not verified (see notes)
        if pdd_client.sign(params, self.secret) != params.get("sign"):
            return self.error(20004, "签名验证失败")
        stamp = _int(params.get("timestamp"))
        if stamp is None or self.skew_s(datetime.fromtimestamp(stamp, UTC)) > self.timestamp_tolerance_s:
            return self.error(10000, "参数错误: timestamp与服务器时间相差超过10分钟")
        shop = self.sessions.get(params.get("access_token", ""))
        if shop is None:
            return self.error(10019, "access_token已过期")
        if params.get("type") != pdd_client.METHOD:
            return self.error(10000, "参数错误: type")
        first, last = _int(params.get("start_updated_at")), _int(params.get("end_updated_at"))
        if first is None or last is None or not first < last or last - first > self.max_window.total_seconds():
            return self.error(10000, "参数错误: 开始时间结束时间间距不超过30分钟")
        page, size = _int(params.get("page", "1")), _int(params.get("page_size", "100"))
        if page is None or size is None or page < 1 or not 1 <= size <= self.max_page_size:
            return self.error(10000, "参数错误: page/page_size")
        start, end = datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC)
        if self.failing(start, end):
            return 503, None
        docs = self.select(shop, start, end, newest_first=False)
        chunk, more = _page_slice(docs, page, size)
        result: dict[str, Any] = {"total_count": len(docs), "order_sn_list": chunk, "request_id": _request_id()}
        if params.get("use_has_next") == "true":
            result["has_next"] = more
        return 200, {pdd_client.RESPONSE_KEY: result}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


__all__ = ["DEFAULT_SESSION", "DEFAULT_SHOP", "FAKES", "FakeJd", "FakePdd", "FakePlatform", "FakeTaobao", "encode",
           "fake_for", "generate_orders"]

FAKES: dict[str, type[FakePlatform]] = {"taobao": FakeTaobao, "jd": FakeJd, "pdd": FakePdd}


def fake_for(channel: str, app_key: str, secret: str, **kwargs: Any) -> FakePlatform:
    return FAKES[channel](app_key, secret, **kwargs)
