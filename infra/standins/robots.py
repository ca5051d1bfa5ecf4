"""Stand-ins for the WeCom and DingTalk group robots in the demo, tests and benchmarks.

A real HTTP server on loopback that answers as the platforms do (orderhub/alerts/robots.py names
the sources): HTTP 200 with `{"errcode", "errmsg"}`, and
- WeCom `POST /cgi-bin/webhook/send?key=<key>`: an unknown key is 93000; the body must be JSON with a
  known msgtype (40008 otherwise) and its content (markdown 4096 bytes, text 2048) or 40058;
- DingTalk `POST /robot/send?access_token=<token>&timestamp=<ms>&sign=<sign>`: an unknown token is
  300001; a robot with a signing secret needs a timestamp within one hour of now and the matching sign
  (310000 "invalid timestamp" / "sign not match"); the body at most 20000 bytes (460101), with
  msgtype markdown (title and text) or text (content) (40035 otherwise: the stand-in's choice, the
  platform's code for a malformed body was not verified);
- both: 20 messages a minute per robot (45009 / 130101 past that).

It can be told to fail the next N calls of a robot (an HTTP status, or an errcode), and it records
every message each robot accepted, in order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

WECOM_PATH = "/cgi-bin/webhook/send"
DINGTALK_PATH = "/robot/send"
RATE_PER_MINUTE = 20
DINGTALK_TOLERANCE_MS = 3_600_000
WECOM_LIMITS = {"markdown": 4096, "text": 2048}
DINGTALK_BODY_MAX = 20_000


@dataclass
class RobotMessage:
    msgtype: str
    title: str  # DingTalk markdown only
    content: str  # WeCom content / DingTalk markdown text or text content
    at: float  # the stand-in's clock when accepted


@dataclass
class Robot:
    """One group robot: the names it is configured under, its credential and what it accepted."""

    kind: str  # wecom | dingtalk
    credential: str  # WeCom key / DingTalk access_token
    secret: str = ""  # DingTalk signing secret ("" = the robot does not check a sign)
    names: list[str] = field(default_factory=list)
    messages: list[RobotMessage] = field(default_factory=list)
    attempts: int = 0
    refused: dict[int, int] = field(default_factory=dict)  # errcode -> times
    fail_next: int = 0
    fail_status: int | None = None  # an HTTP status to answer with, or
    fail_errcode: int | None = None  # an errcode (HTTP 200)
    _accepted_at: deque[float] = field(default_factory=deque)


def _reply(errcode: int, errmsg: str) -> tuple[int, bytes]:
    return 200, json.dumps({"errcode": errcode, "errmsg": errmsg}).encode()


class RobotServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.robots: dict[tuple[str, str], Robot] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="robots", daemon=True)

    # ------------------------------------------------------------------------------ set-up and use

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, name: str, kind: str, credential: str, secret: str = "") -> Robot:
        """Declare a robot (a second name for the same credential adds a name to the same robot)."""
        if kind not in ("wecom", "dingtalk"):
            raise ValueError(f"unknown robot kind {kind!r}")
        with self._lock:
            robot = self.robots.setdefault((kind, credential), Robot(kind, credential, secret))
            robot.secret = robot.secret or secret
            if name not in robot.names:
                robot.names.append(name)
            return robot

    def robot(self, name: str) -> Robot:
        for robot in self.robots.values():
            if name in robot.names:
                return robot
        raise KeyError(f"no robot named {name}")

    def messages(self, name: str) -> list[RobotMessage]:
        with self._lock:
            return list(self.robot(name).messages)

    def fail(self, name: str, times: int, *, status: int | None = 503, errcode: int | None = None) -> None:
        """Fail the robot's next `times` calls: with an errcode if given, else with the HTTP status."""
        with self._lock:
            robot = self.robot(name)
            robot.fail_next = times
            robot.fail_errcode, robot.fail_status = errcode, None if errcode is not None else status

    def start(self) -> RobotServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> RobotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ the platforms

    def receive(self, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, bytes]:
        """(HTTP status, reply body) for one POST."""
        one = {k: v[0] for k, v in query.items()}
        with self._lock:
            if path == WECOM_PATH:
                return self._wecom(one, body)
            if path == DINGTALK_PATH:
                return self._dingtalk(one, body)
            return 404, b"not found"

    def _refuse(self, robot: Robot, errcode: int, errmsg: str) -> tuple[int, bytes]:
        robot.refused[errcode] = robot.refused.get(errcode, 0) + 1
        return _reply(errcode, errmsg)

    def _injected(self, robot: Robot) -> tuple[int, bytes] | None:
        if robot.fail_next <= 0:
            return None
        robot.fail_next -= 1
        if robot.fail_errcode is not None:
            return self._refuse(robot, robot.fail_errcode, "failure injected by the stand-in")
        return robot.fail_status or 503, b"<html>service unavailable</html>"

    def _over_rate(self, robot: Robot, now: float) -> bool:
        while robot._accepted_at and robot._accepted_at[0] <= now - 60:
            robot._accepted_at.popleft()
        return len(robot._accepted_at) >= RATE_PER_MINUTE

    def _accept(self, robot: Robot, message: RobotMessage) -> tuple[int, bytes]:
        robot.messages.append(message)
        robot._accepted_at.append(message.at)
        return _reply(0, "ok")

    def _wecom(self, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        robot = self.robots.get(("wecom", query.get("key", "")))
        if robot is None:
            return _reply(93000, "invalid webhook url, hint: [stand-in]")
        robot.attempts += 1
        if (injected := self._injected(robot)) is not None:
            return injected
        try:
            document = json.loads(body)
            msgtype = document["msgtype"]
            content = document[msgtype]["content"] if msgtype in WECOM_LIMITS else None
        except (ValueError, KeyError, TypeError):
            return self._refuse(robot, 40058, "invalid Request Parameter: wrong json format")
        if content is None:
            return self._refuse(robot, 40008, "invalid message type")
        if not isinstance(content, str) or not content:
            return self._refuse(robot, 40058, f"{msgtype}.content is empty. invalid Request Parameter")
        if len(content.encode()) > WECOM_LIMITS[msgtype]:
            return self._refuse(robot, 40058, f"{msgtype}.content exceed max length {WECOM_LIMITS[msgtype]}. "
                                              "invalid Request Parameter")
        now = self._clock()
        if self._over_rate(robot, now):
            return self._refuse(robot, 45009, "api freq out of limit")
        return self._accept(robot, RobotMessage(msgtype, "", content, now))

    def _dingtalk(self, query: dict[str, str], body: bytes) -> tuple[int, bytes]:
        robot = self.robots.get(("dingtalk", query.get("access_token", "")))
        if robot is None:
            return _reply(300001, "token is not exist")
        robot.attempts += 1
        if (injected := self._injected(robot)) is not None:
            return injected
        now = self._clock()
        if robot.secret:
            timestamp = query.get("timestamp", "")
            if not timestamp.isdigit() or abs(int(timestamp) - now * 1000) > DINGTALK_TOLERANCE_MS:
                return self._refuse(robot, 310000, "invalid timestamp")
            expected = base64.b64encode(hmac.new(robot.secret.encode(), f"{timestamp}\n{robot.secret}".encode(),
                                                 hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(expected, query.get("sign", "")):
                return self._refuse(robot, 310000, "sign not match")
        if len(body) > DINGTALK_BODY_MAX:
            return self._refuse(robot, 460101, "message too long, exceed 20000 bytes")
        try:
            document = json.loads(body)
            msgtype = document["msgtype"]
            if msgtype == "markdown":
                title, content = document["markdown"]["title"], document["markdown"]["text"]
            elif msgtype == "text":
                title, content = "", document["text"]["content"]
            else:
                raise KeyError(msgtype)
            if not isinstance(title, str) or not isinstance(content, str) or not content:
                raise ValueError("empty")
        except (ValueError, KeyError, TypeError):
            return self._refuse(robot, 40035, "missing or invalid parameter")
        if self._over_rate(robot, now):
            return self._refuse(robot, 130101, "send too fast, exceed 20 times per minute")
        return self._accept(robot, RobotMessage(msgtype, title, content, now))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = urlsplit(self.path)
                status, reply = server.receive(parts.path, parse_qs(parts.query), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status == 200 else "text/html")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _credential(kind: str, url: str) -> str:
    query = parse_qs(urlsplit(url).query)
    return (query.get("key" if kind == "wecom" else "access_token") or [""])[0]


def _moved(url: str, origin: str) -> str:
    """`url` on `origin` (scheme://host:port), path and query (the robot's key) kept."""
    parts, target = urlsplit(url), urlsplit(origin)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))


def robots_for(config: Any, host: str = "127.0.0.1", port: int = 0,
               clock: Callable[[], float] = time.time) -> tuple[RobotServer, Any]:
    """A stand-in (not started) for every robot of `config`, and the config re-pointed at it.

    Every `alerts.robots[].webhook` and every robot subscriber's endpoint (kind wecom / dingtalk)
    moves to the stand-in's host and port; keys, tokens and secrets stay as configured.
    """
    server = RobotServer(host, port, clock)
    origin = f"http://{host}:{server.port}"
    robots = []
    for robot in config.alerts.robots:
        server.add(robot.name, robot.kind, _credential(robot.kind, robot.webhook), robot.secret)
        robots.append(robot.model_copy(update={"webhook": _moved(robot.webhook, origin)}))
    subscribers = []
    for sub in config.subscribers:
        if sub.kind in ("wecom", "dingtalk"):
            server.add(sub.name, sub.kind, _credential(sub.kind, sub.endpoint), sub.signing_secret)
            sub = sub.model_copy(update={"endpoint": _moved(sub.endpoint, origin)})
        subscribers.append(sub)
    alerts = config.alerts.model_copy(update={"robots": robots})
    return server, config.model_copy(update={"alerts": alerts, "subscribers": subscribers})
