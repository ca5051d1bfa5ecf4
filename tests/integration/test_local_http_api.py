"""The local HTTP API: real HTTP in, API Gateway HTTP API payload 2.0 events out, replies mapped back.

The runtime here declares its own routes and stand-in functions (the hub's routes are the hub's
business), runs on a manual clock (no schedule fires by itself), and has nothing else to invoke,
so "no function was called" is a statement about the request alone.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest

from infra.config import HubConfig
from infra.local.clock import ManualClock
from infra.local.http_api import HttpApi
from infra.local.runtime import LocalRuntime
from infra.topology import Function, Route, Topology

ROUTES = (Route("POST", "/webhooks/{channel}", "webhook_ingest"), Route("GET", "/orders", "orders_api"),
          Route("GET", "/orders/{order_id}", "orders_api"), Route("GET", "/orders/{order_id}/timeline", "orders_api"))
TOPOLOGY = Topology(app="orderhub", tables=(), queues=(), buckets=(), buses=(), topics=(), rules=(),
                    functions=(Function("webhook_ingest", "stand-in"), Function("orders_api", "stand-in")),
                    routes=ROUTES, schedules=(), subscribers=())
# A client socket never waits longer than this for the server's answer: a server that would block for
# ever fails the test instead of hanging it.
CLIENT_TIMEOUT_S = 60

seen: list[dict] = []


def echo(event: dict, context) -> object:
    """Stand-in for both routed functions: reply as the x-test-reply header asks, else echo the event."""
    seen.append(event)
    match event["headers"].get("x-test-reply"):
        case "raise":
            raise RuntimeError("handler bug")
        case "bare":
            return {"order_id": "o-1", "status": "PAID"}
        case "binary":
            return {"statusCode": 201, "headers": {"content-type": "image/png"}, "isBase64Encoded": True,
                    "body": base64.b64encode(b"\x89PNG\x00\xff").decode(), "cookies": ["a=1; Path=/", "b=2"]}
        case "bad":
            return {"statusCode": "not-a-number"}
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json.dumps({"function": context.function_name})}


@pytest.fixture(scope="module")
def api():
    config = HubConfig(stage="ithttp", ops_token="test-ops-token-0123456789")
    with LocalRuntime(config, port=0, clock=ManualClock(), topology=TOPOLOGY, prewarm=False,
                      handler_overrides={"webhook_ingest": echo, "orders_api": echo}) as runtime:
        yield runtime


def call(api, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    parts = urlsplit(api.api_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=CLIENT_TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read(), response.headers
    finally:
        conn.close()


def last_event() -> dict:
    return seen[-1]


def test_a_webhook_becomes_a_payload_v2_event(api):
    # Given a signed-looking JSON webhook with query parameters and cookies
    status, _, body, _ = call(api, "POST", "/webhooks/mall?shop=hz&tag=a&tag=b&empty=", body=b'{"event_id":"e1"}',
                              headers={"Content-Type": "application/json", "X-Mall-Signature": "sha256=ab",
                                       "Cookie": "s=1; t=2", "User-Agent": "shop/1.0"})
    # Then the webhook function is called and its reply reaches the client
    assert status == 200 and json.loads(body) == {"function": "orderhub-ithttp-webhook_ingest"}
    event = last_event()
    assert event["version"] == "2.0" and event["routeKey"] == "POST /webhooks/{channel}"
    assert event["rawPath"] == "/webhooks/mall" and event["rawQueryString"] == "shop=hz&tag=a&tag=b&empty="
    assert event["pathParameters"] == {"channel": "mall"}
    assert event["queryStringParameters"] == {"shop": "hz", "tag": "a,b", "empty": ""}
    assert event["headers"]["x-mall-signature"] == "sha256=ab"  # lower-cased names
    assert all(name == name.lower() for name in event["headers"])
    assert "cookie" not in event["headers"] and event["cookies"] == ["s=1", "t=2"]
    assert event["body"] == '{"event_id":"e1"}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {"method": "POST", "path": "/webhooks/mall", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "shop/1.0"}
    assert ctx["stage"] == "$default" and ctx["routeKey"] == event["routeKey"] and ctx["requestId"]
    assert isinstance(ctx["timeEpoch"], int) and ctx["time"].endswith("+0000")


def test_the_most_specific_route_wins_and_params_are_extracted(api):
    call(api, "GET", "/orders/ord-42/timeline")
    assert last_event()["routeKey"] == "GET /orders/{order_id}/timeline"
    assert last_event()["pathParameters"] == {"order_id": "ord-42"}
    call(api, "GET", "/orders/ord-42")
    assert last_event()["routeKey"] == "GET /orders/{order_id}"
    call(api, "GET", "/orders?channel=mall&channel_order_id=M1")
    event = last_event()
    assert event["routeKey"] == "GET /orders" and "pathParameters" not in event and "body" not in event
    assert event["queryStringParameters"] == {"channel": "mall", "channel_order_id": "M1"}


@pytest.mark.parametrize("method, path", [("GET", "/nowhere"), ("GET", "/webhooks/mall"), ("DELETE", "/orders/1"),
                                          ("GET", "/orders/1/timeline/extra")])
def test_no_matching_route_is_404_without_calling_a_function(api, method, path):
    before = sum(api.invocations.values())
    status, headers, body, _ = call(api, method, path)
    assert status == 404 and json.loads(body) == {"message": "Not Found"}
    assert sum(api.invocations.values()) == before


def test_a_binary_body_arrives_base64_encoded(api):
    payload = bytes(range(256))
    call(api, "POST", "/webhooks/files", body=payload, headers={"Content-Type": "application/octet-stream"})
    event = last_event()
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == payload


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", None])
def test_form_posts_and_untyped_bodies_arrive_base64_encoded_as_http_apis_do(api, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    call(api, "POST", "/webhooks/jd", body=b"a=1&b=%E4%B8%AD", headers=headers)
    event = last_event()
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"a=1&b=%E4%B8%AD"


def test_text_that_is_not_utf8_arrives_base64_encoded(api):
    call(api, "POST", "/webhooks/legacy", body="订单".encode("gbk"), headers={"Content-Type": "text/plain"})
    assert last_event()["isBase64Encoded"] is True
    assert base64.b64decode(last_event()["body"]).decode("gbk") == "订单"


def test_a_body_over_the_lambda_payload_limit_is_413(api):
    before = sum(api.invocations.values())
    status, _, body, _ = call(api, "POST", "/webhooks/mall", body=b"x" * (6 * 1024 * 1024 + 1),
                              headers={"Content-Type": "application/json"})
    assert status == 413 and json.loads(body) == {"message": "Request Entity Too Large"}
    assert sum(api.invocations.values()) == before


def exchange(url: str, request: bytes, end_of_request: bool = True) -> tuple[int, dict, bytes]:
    """Send raw bytes, half-close if asked (the server then sees the end of the body), read the whole answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=CLIENT_TIMEOUT_S) as sock:
        sock.sendall(request)
        if end_of_request:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection without an answer: {received!r}"
            received += chunk
        head, rest = received.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(rest) < int(headers.get("content-length", 0)):
            rest += sock.recv(65536)
        return int(lines[0].split()[1]), headers, rest


def post_head(*headers: str) -> bytes:
    return ("POST /webhooks/mall HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
            + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()


@pytest.mark.parametrize("headers, body, status, reason", [
    (["Content-Length: -1"], b"{}", 400, "invalid Content-Length"),
    (["Content-Length: +2"], b"{}", 400, "invalid Content-Length"),
    (["Content-Length: 2e0"], b"{}", 400, "invalid Content-Length"),
    (["Content-Length: 0x2"], b"{}", 400, "invalid Content-Length"),
    (["Content-Length: \u0662"], b"{}", 400, "invalid Content-Length"),  # an Arabic-Indic two
    (["Content-Length: 2", "Content-Length: 3"], b"{}", 400, "invalid Content-Length"),
    (["Content-Length: 99999999999999999999"], b"{}", 400, "invalid Content-Length"),
    (["Content-Length: 10"], b'{"a":1}', 400, "request body ended before its declared length"),
    (["Transfer-Encoding: chunked"], b"7\r\n{\"a\":", 400, "request body ended before its declared length"),
    (["Transfer-Encoding: chunked"], b"zz\r\n{}\r\n0\r\n\r\n", 400, "invalid chunked body"),
    (["Transfer-Encoding: chunked", "Content-Length: 2"], b"{}", 400,
     "Content-Length and Transfer-Encoding together"),
    (["Transfer-Encoding: gzip"], b"{}", 501, "only the chunked transfer coding is supported"),
])
def test_a_body_that_cannot_be_read_as_framed_is_a_400_and_calls_nothing(api, headers, body, status, reason):
    # Given a request whose framing is broken, the client then ending its side (so a server waiting
    # for more would wait for ever; the client's bounded timeout turns that into a failure)
    before = sum(api.invocations.values())
    # When it reaches the server
    got, reply_headers, reply = exchange(api.api_url, post_head(*headers) + body)
    # Then it is refused with the reason, the connection is closed, and no function ran
    assert (got, json.loads(reply)) == (status, {"message": reason})
    assert reply_headers["connection"] == "close"
    assert sum(api.invocations.values()) == before


def test_a_client_that_stops_sending_mid_body_gets_a_400_after_the_read_timeout():
    # Given a server with a short read timeout, and a client that sends 3 of 10 bytes and then waits,
    # its side still open
    calls: list[dict] = []
    server = HttpApi(ROUTES, lambda fn, event: calls.append(event), "127.0.0.1", 0, read_timeout_s=0.2)
    server.start()
    try:
        # When the server stops waiting (its timeout, not the client's, ends the exchange)
        status, headers, reply = exchange(server.url, post_head("Content-Length: 10") + b'{"a', end_of_request=False)
    finally:
        server.stop()
    # Then the client has its 400 with the reason, the connection is closed, and nothing was invoked
    assert (status, json.loads(reply)) == (400, {"message": "request body incomplete: the client stopped sending"})
    assert headers["connection"] == "close" and calls == []


def test_a_chunked_body_arrives_whole(api):
    chunks = b"5\r\n{\"eve\r\n9;ext=1\r\nnt_id\":\"e\r\n3\r\n2\"}\r\n0\r\nX-Trailer: t\r\n\r\n"
    status, _, _ = exchange(api.api_url, post_head("Transfer-Encoding: chunked") + chunks)
    assert status == 200 and last_event()["body"] == '{"event_id":"e2"}'


def test_a_post_without_content_length_has_no_body(api):
    status, _, _ = exchange(api.api_url, post_head())
    assert status == 200 and "body" not in last_event() and last_event()["isBase64Encoded"] is False


def test_a_handler_error_is_a_500_and_is_counted(api):
    errors = api.errors["orders_api"]
    status, _, body, _ = call(api, "GET", "/orders/x", headers={"X-Test-Reply": "raise"})
    assert status == 500 and json.loads(body) == {"message": "Internal Server Error"}
    assert api.errors["orders_api"] == errors + 1
    status, _, _, _ = call(api, "GET", "/orders/x", headers={"X-Test-Reply": "bad"})
    assert status == 500


def test_a_reply_without_status_code_is_a_200_json_body(api):
    status, headers, body, _ = call(api, "GET", "/orders/x", headers={"X-Test-Reply": "bare"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"order_id": "o-1", "status": "PAID"}


def test_base64_replies_headers_and_cookies_are_written_back(api):
    status, headers, body, raw = call(api, "GET", "/orders/x", headers={"X-Test-Reply": "binary"})
    assert status == 201 and headers["content-type"] == "image/png" and body == b"\x89PNG\x00\xff"
    assert raw.get_all("set-cookie") == ["a=1; Path=/", "b=2"]
    assert headers["apigw-requestid"]


def test_health_answers_without_a_function(api):
    status, _, body, _ = call(api, "GET", "/_local/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
