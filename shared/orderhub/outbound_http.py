"""One POST to a system outside the hub (a subscriber's webhook, a chat robot): timeouts, the reply,
what it means, and the http.client transport that sends it.

Shared by the dispatcher (orderhub.dispatch) and the notifier (orderhub.alerts), which each decide
what to send; neither depends on the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

RETRYABLE_STATUS = frozenset({408, 425, 429})
# Enough of a reply to read a robot's {"errcode": ...}; nobody's reply body is kept beyond it.
REPLY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 3.0  # to open the connection (TCP + TLS)
    read_s: float = 10.0  # then, between bytes of the answer


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes = b""  # at most REPLY_BYTES


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["delivered", "retry", "rejected"]
    status: int | None
    reason: str


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts) -> HttpReply:
        """The reply; raises OSError (incl. timeouts) when no reply was had."""


class HttpTransport:
    """POST over http.client with separate connect and read timeouts, keeping one connection per origin.

    A kept connection the server has closed meanwhile fails before a reply; that attempt is then
    reported as "no response" and retried by the caller's backoff like any other (receivers dedupe
    on Idempotency-Key), never silently re-sent here.
    """

    def __init__(self) -> None:
        self._connections: dict[tuple[str, str, int], Any] = {}

    def post(self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts) -> HttpReply:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise OSError(f"unsupported endpoint: {parts.scheme or '?'}://{parts.hostname or '?'}")
        origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = self._connections.pop(origin, None) or self._connect(origin, timeouts)
        try:
            connection.sock.settimeout(timeouts.read_s)
            connection.request("POST", target, body=body, headers=headers)
            reply = connection.getresponse()
            data = reply.read(REPLY_BYTES)
            if reply.will_close or reply.read(1):  # an oversized reply: do not reuse the connection
                connection.close()
            else:
                self._connections[origin] = connection
            return HttpReply(reply.status, data)
        except Exception as exc:
            connection.close()
            import http.client

            if isinstance(exc, http.client.HTTPException):  # malformed reply or closed connection
                raise OSError(f"{type(exc).__name__}: {exc}") from exc
            raise

    @staticmethod
    def _connect(origin: tuple[str, str, int], timeouts: Timeouts) -> Any:
        import http.client

        scheme, host, port = origin
        if scheme == "https":
            import ssl

            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeouts.connect_s, context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeouts.connect_s)
        connection.connect()
        # http.client sends the headers and the body in two writes: without this, the body waits for
        # the receiver's (delayed) acknowledgement of the headers.
        import socket

        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection


def http_outcome(status: int) -> DeliveryResult:
    """A webhook receiver's HTTP status -> delivered / retry / rejected."""
    if 200 <= status < 300:
        return DeliveryResult("delivered", status, "ok")
    if status in RETRYABLE_STATUS or status >= 500:
        return DeliveryResult("retry", status, f"HTTP {status}")
    return DeliveryResult("rejected", status, f"HTTP {status}: permanent, not retried")
