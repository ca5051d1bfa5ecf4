"""API Gateway HTTP API, locally: requests become payload-format 2.0 events for the routed function.

What mirrors the service (so a handler that works here works behind API Gateway):
- routes use the HTTP API syntax (`{param}`, `{proxy+}`); the most specific route wins; no
  route is `404 {"message":"Not Found"}` whatever the method;
- headers are lower-cased, repeated ones joined with ","; `Cookie` moves to `cookies`;
  repeated query parameters are joined with ","; empty maps and an empty body are left out;
- the body is text only for text/*, application/json, application/xml and
  application/javascript (and valid UTF-8); everything else, form posts and a missing
  Content-Type included, arrives base64-encoded with isBase64Encoded=true, as HTTP APIs do;
- an event over Lambda's 6 MB synchronous payload limit is `413`; a function error is
  `500 {"message":"Internal Server Error"}`;
- a body that cannot be read is `400` and the connection is closed: a Content-Length that is
  not one plain decimal number (`-1`, `+5`, `1e3`, two different values), a body shorter than
  its Content-Length, a chunked body that breaks off, or a client that stops sending for
  `read_timeout_s` (the server never blocks on a client for ever); a Transfer-Encoding other
  than chunked is `501`;
- a reply without `statusCode` is taken as a 200 JSON body, as payload 2.0 specifies.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.topology import Route

log = logging.getLogger("orderhub.local.http")

LAMBDA_SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
# A client that sends nothing for this long (mid-body, or idle on a kept connection) is dropped.
READ_TIMEOUT_S = 30.0
HEALTH_PATH = "/_local/health"
_TEXT_TYPES = {"application/json", "application/xml", "application/javascript"}

Invoke = Callable[[str, dict], Any]


class UnreadableBody(Exception):
    """The request's body cannot be read as framed: answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class CompiledRoute:
    def __init__(self, route: Route) -> None:
        self.route = route
        self.key = f"{route.method} {route.path}"
        self.segments = route.path.strip("/").split("/") if route.path != "/" else []
        self.greedy = bool(self.segments) and re.fullmatch(r"\{\w+\+\}", self.segments[-1]) is not None
        # Literal segments beat parameters, parameters beat a greedy tail.
        self.rank = (not self.greedy, sum(not s.startswith("{") for s in self.segments), len(self.segments))

    def match(self, method: str, segments: list[str]) -> dict[str, str] | None:
        if self.route.method not in (method, "ANY"):
            return None
        fixed = self.segments[:-1] if self.greedy else self.segments
        if len(segments) < len(fixed) + self.greedy or (not self.greedy and len(segments) != len(fixed)):
            return None
        params: dict[str, str] = {}
        for pattern, value in zip(fixed, segments, strict=False):
            if pattern.startswith("{") and pattern.endswith("}"):
                params[pattern[1:-1]] = unquote(value)
            elif pattern != value:
                return None
        if self.greedy:
            params[self.segments[-1][1:-2]] = unquote("/".join(segments[len(fixed):]))
        return params


class HttpApi:
    def __init__(self, routes: tuple[Route, ...], invoke: Invoke, host: str, port: int,
                 account_id: str = "123456789012", read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self._routes = sorted((CompiledRoute(r) for r in routes), key=lambda r: r.rank, reverse=True)
        self._invoke = invoke
        self._account_id = account_id
        self._host = host
        self._server = ThreadingHTTPServer((host, port), _make_handler(self, read_timeout_s))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="orderhub-http-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def route(self, method: str, path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
        segments = [s for s in path.strip("/").split("/") if s] if path.strip("/") else []
        for compiled in self._routes:
            params = compiled.match(method, segments)
            if params is not None:
                return compiled, params
        return None

    def build_event(self, request: BaseHTTPRequestHandler, route: CompiledRoute, params: dict[str, str],
                    raw_path: str, raw_query: str, body: bytes) -> dict:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        cookie_header = headers.pop("cookie", None)
        source_ip = request.client_address[0]
        headers["x-forwarded-for"] = f"{headers['x-forwarded-for']}, {source_ip}" if "x-forwarded-for" in headers \
            else source_ip
        headers["x-forwarded-proto"] = "http"
        headers["x-forwarded-port"] = str(self._server.server_address[1])
        headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": self._account_id,
                "apiId": "local",
                "domainName": headers.get("host", "").split(":")[0],
                "domainPrefix": headers.get("host", "").split(".")[0].split(":")[0],
                "http": {"method": request.command, "path": raw_path, "protocol": request.request_version,
                         "sourceIp": source_ip, "userAgent": headers.get("user-agent", "")},
                "requestId": base64.b64encode(os.urandom(12)).decode(),
                "routeKey": route.key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookie_header:
            event["cookies"] = [c.strip() for c in cookie_header.split(";") if c.strip()]
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if body:
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            text = content_type.startswith("text/") or content_type in _TEXT_TYPES
            try:
                event["body"] = body.decode("utf-8") if text else None
            except UnicodeDecodeError:
                event["body"] = None
            if event["body"] is None:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        return event


def _make_handler(api: HttpApi, read_timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections like they would with API GW
        timeout = read_timeout_s  # a socket timeout on every read: a stalled client frees its thread
        # One write per response, sent at once: headers and body in separate small writes meet the
        # client's delayed ACK and cost ~40 ms a request.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            started = time.perf_counter()
            api.requests += 1
            parts = urlsplit(self.path)
            raw_path, raw_query = parts.path or "/", parts.query
            status = self._dispatch(raw_path, raw_query)
            log.info("%s %s %s %.1fms", self.command, self.path, status, (time.perf_counter() - started) * 1000)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve

        def _dispatch(self, raw_path: str, raw_query: str) -> int:
            try:
                body = read_body(self.headers, self.rfile)
            except UnreadableBody as refused:
                # The stream's framing is lost: nothing after it can be trusted, so the connection ends here.
                return self._reply(refused.status, [("content-type", "application/json"), ("connection", "close")],
                                   json.dumps({"message": refused.message}).encode(), None)
            if self.command == "GET" and raw_path == HEALTH_PATH:
                return self._reply_json(200, {"status": "ok"})
            found = api.route(self.command, raw_path)
            if found is None:
                return self._reply_json(404, {"message": "Not Found"})
            route, params = found
            event = api.build_event(self, route, params, raw_path, raw_query, body)
            if len(json.dumps(event)) > LAMBDA_SYNC_PAYLOAD_LIMIT:  # base64 grows a body by a third
                return self._reply_json(413, {"message": "Request Entity Too Large"})
            try:
                result = api._invoke(route.route.function, event)
                status, headers, payload = _to_http(result)
            except Exception:  # already logged by the runtime; API Gateway answers 500
                return self._reply_json(500, {"message": "Internal Server Error"})
            return self._reply(status, headers, payload, event["requestContext"]["requestId"])

        def _reply_json(self, status: int, body: dict) -> int:
            return self._reply(status, [("content-type", "application/json")], json.dumps(body).encode(), None)

        def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes, request_id: str | None) -> int:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if request_id:
                self.send_header("apigw-requestid", request_id)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return status

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


def read_body(headers: Message, stream: BufferedIOBase) -> bytes:
    """The request body as its headers frame it (RFC 9112 §6), or UnreadableBody."""
    encodings = [e.strip().lower() for v in headers.get_all("transfer-encoding") or [] for e in v.split(",")]
    lengths = [v.strip() for v in headers.get_all("content-length") or []]
    if encodings:
        if lengths:  # both: the classic request-smuggling shape; refuse rather than pick one
            raise UnreadableBody(400, "Content-Length and Transfer-Encoding together")
        if encodings != ["chunked"]:
            raise UnreadableBody(501, "only the chunked transfer coding is supported")
        return _read_chunked(stream)
    if not lengths:
        return b""  # a request without framing has no body
    if len(set(lengths)) != 1 or not re.fullmatch(r"[0-9]{1,16}", lengths[0]):
        raise UnreadableBody(400, "invalid Content-Length")
    length = int(lengths[0])
    if length > LAMBDA_SYNC_PAYLOAD_LIMIT:
        _discard(stream, length)  # read it, so the client sees our 413 rather than a reset connection
        raise UnreadableBody(413, "Request Entity Too Large")
    return _read_exactly(stream, length)


def _read_exactly(stream: BufferedIOBase, length: int) -> bytes:
    try:
        data = stream.read(length)
    except TimeoutError:
        raise UnreadableBody(400, "request body incomplete: the client stopped sending") from None
    if len(data) < length:
        raise UnreadableBody(400, "request body ended before its declared length")
    return data


def _discard(stream: BufferedIOBase, length: int) -> None:
    while length > 0:
        length -= len(_read_exactly(stream, min(length, 1 << 20)))


def _read_chunked(stream: BufferedIOBase) -> bytes:
    body = bytearray()
    while True:
        try:
            size_line = stream.readline(1024)
        except TimeoutError:
            raise UnreadableBody(400, "request body incomplete: the client stopped sending") from None
        size = size_line.split(b";", 1)[0].strip()
        if not size_line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,8}", size):
            raise UnreadableBody(400, "invalid chunked body")
        if int(size, 16) == 0:
            break
        if len(body) + int(size, 16) > LAMBDA_SYNC_PAYLOAD_LIMIT:
            raise UnreadableBody(413, "Request Entity Too Large")
        body += _read_exactly(stream, int(size, 16))
        if _read_exactly(stream, 2) != b"\r\n":
            raise UnreadableBody(400, "invalid chunked body")
    while True:  # trailer fields end with an empty line; they are not passed on
        try:
            line = stream.readline(8192)
        except TimeoutError:
            raise UnreadableBody(400, "request body incomplete: the client stopped sending") from None
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            raise UnreadableBody(400, "invalid chunked body")


def _to_http(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Payload format 2.0 response rules."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    status = int(result["statusCode"])
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        payload = base64.b64decode(body)
    else:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
    return status, headers, payload
