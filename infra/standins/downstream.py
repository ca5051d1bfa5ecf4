"""Stand-ins for the merchant's downstream systems (WMS, ERP) in the demo, tests and benchmarks.

A real HTTP server on loopback that checks every push the way a subscriber should: the
signature over timestamp + body with the subscriber's secret, the timestamp window, and the
Idempotency-Key (a repeated key is counted as a duplicate and answered 200, as a subscriber
that dedupes would). It can be told to fail the next N pushes on a path, to play an outage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

TIMESTAMP_TOLERANCE_S = 300


@dataclass
class Inbox:
    """What one subscriber received."""

    secret: str
    fail_next: int = 0
    fail_status: int = 503
    attempts: int = 0
    failures_served: int = 0
    bad_signatures: int = 0
    keys: Counter = field(default_factory=Counter)
    events: list[dict] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return len(self.keys)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.keys.values())


class DownstreamReceiver:
    def __init__(self, secrets_by_path: dict[str, str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.inboxes: dict[str, Inbox] = {path: Inbox(secret) for path, secret in secrets_by_path.items()}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="downstream", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> DownstreamReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DownstreamReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail(self, path: str, times: int, status: int = 503) -> None:
        with self._lock:
            self.inboxes[path].fail_next, self.inboxes[path].fail_status = times, status

    def _receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            inbox = self.inboxes.get(path)
            if inbox is None:
                return 404
            inbox.attempts += 1
            if not _authentic(inbox.secret, headers, body):
                inbox.bad_signatures += 1
                return 401
            if inbox.fail_next > 0:
                inbox.fail_next -= 1
                inbox.failures_served += 1
                return inbox.fail_status
            key = headers.get("idempotency-key", "")
            inbox.keys[key] += 1
            if inbox.keys[key] == 1:
                inbox.events.append(json.loads(body))
            return 200

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._receive(urlsplit(self.path).path, headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _authentic(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers.get("x-orderhub-timestamp", "")
    presented = headers.get("x-orderhub-signature", "")
    if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > TIMESTAMP_TOLERANCE_S:
        return False
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, presented)


def receiver_for(config, host: str = "127.0.0.1", port: int = 0):
    """A receiver for every webhook subscriber of `config`, and the config re-pointed at it.

    Robot subscribers (WeCom / DingTalk) are left as they are: infra.standins.robots stands in for those.
    """
    webhooks = [s for s in config.subscribers if s.kind == "webhook"]
    paths = {sub.name: f"/{sub.name}/orderhub-events" for sub in webhooks}
    receiver = DownstreamReceiver({paths[s.name]: s.signing_secret for s in webhooks}, host, port)
    subscribers = [s.model_copy(update={"endpoint": receiver.url(paths[s.name])}) if s.name in paths else s
                   for s in config.subscribers]
    return receiver, config.model_copy(update={"subscribers": subscribers}), paths


def by_subscriber(receiver: DownstreamReceiver, paths: dict[str, str]) -> dict[str, Inbox]:
    return {name: receiver.inboxes[path] for name, path in paths.items()}
