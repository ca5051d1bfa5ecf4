"""Concurrent notifiers under a chosen interleaving: a test harness shared by the unit and moto tiers.

Each notifier runs in its own thread, but only one thread runs at a time: every port call (store,
robot, alarm topic) first waits at a gate, and the test (hypothesis) picks which waiting notifier
goes next, how far the clock moves before it, and whether a send fails. So every interleaving of
the notifiers' conditional writes and sends can be drawn, deterministically, and replayed.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.topology import NOTIFIER_TIMEOUT_S
from orderhub.alerts import Alert
from orderhub.alerts.notifier import AlertNotDelivered, AlertSettings, Destination, Notifier
from orderhub.clock import FixedClock
from orderhub.outbound_http import HttpReply

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
WINDOW_S = 300
SETTINGS = AlertSettings(
    window_s=WINDOW_S, default_route="ops",
    routes={"ops": ("robot:ops-wecom", "robot:leads-dingtalk", "sns"), "warehouse": ("robot:ops-wecom",)},
    destinations={"robot:ops-wecom": Destination("robot:ops-wecom", "wecom", "http://wecom.test/send?key=k1"),
                  "robot:leads-dingtalk": Destination("robot:leads-dingtalk", "dingtalk",
                                                      "http://ding.test/robot/send?access_token=t1", "SECx"),
                  "sns": Destination("sns", "sns")},
    business_tz="Asia/Shanghai")
_COUNT = re.compile(r"^(?:\*\*)?(?:(\d+) (?:more|times)|(Once))", re.MULTILINE)
_KEY = re.compile(r"Alert key: (\S+)")


def told_in(text: str) -> tuple[str, int]:
    """(alert key, count) a rendered message says."""
    count = _COUNT.search(text)
    key = _KEY.search(text)
    assert count and key, text
    return key.group(1), int(count.group(1) or 1)


class Turnstile:
    """One runner at a time; the scheduler grants the next gate pass."""

    def __init__(self, workers: int) -> None:
        self._cv = threading.Condition()
        self.waiting: dict[int, str] = {}  # worker -> the kind of operation it waits to do
        self.done: set[int] = set()
        self._granted: int | None = None
        self._workers = workers
        self.failure: BaseException | None = None

    def gate(self, worker: int, operation: str) -> None:
        with self._cv:
            self.waiting[worker] = operation
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._granted == worker)
            self._granted = None
            del self.waiting[worker]

    def finish(self, worker: int, failure: BaseException | None = None) -> None:
        with self._cv:
            self.done.add(worker)
            self.failure = self.failure or failure
            self._cv.notify_all()

    def next_choices(self) -> dict[int, str]:
        """Wait until no worker runs; the workers waiting at a gate (empty when all are done)."""
        with self._cv:
            # Choosing before every worker has reached its gate would explore a different interleaving
            # than the one drawn; the bound only turns a stuck worker into a failure instead of a hang.
            settled = self._cv.wait_for(lambda: self._granted is None
                                        and len(self.waiting) + len(self.done) == self._workers, timeout=600)
            assert settled, f"workers neither at a gate nor done: waiting {self.waiting}, done {self.done}"
            return dict(self.waiting)

    def grant(self, worker: int) -> None:
        with self._cv:
            self._granted = worker
            self._cv.notify_all()


class Gated:
    """Every method call of `inner` passes the worker's gate first."""

    def __init__(self, inner: Any, turnstile: Turnstile, worker: int, kind: str) -> None:
        self._inner, self._turnstile, self._worker, self._kind = inner, turnstile, worker, kind

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def gated(*args: Any, **kwargs: Any) -> Any:
            self._turnstile.gate(self._worker, f"{self._kind}.{name}")
            return method(*args, **kwargs)

        return gated


@dataclass
class World:
    """What every notifier shares: the store, the clock, the destinations' inboxes, the queue."""

    store: Any
    clock: FixedClock = field(default_factory=lambda: FixedClock(T0))
    fail_next_send: bool = False
    sends: int = 0
    failures: int = 0
    inbox: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    claims: list[tuple[str, str, float]] = field(default_factory=list)  # (problem, destination, claim time)
    trace: list[str] = field(default_factory=list)  # every store call and send, in order (for failures)
    running: dict[int, float] = field(default_factory=dict)  # worker -> when its current invocation started
    confirms: list[tuple[str, str, float, int]] = field(default_factory=list)  # + count told
    queue: list[tuple[Alert, str, int]] = field(default_factory=list)  # (alert, message id, receive count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def longest_step(self) -> float:
        """How far the clock may move now: no invocation runs longer than the notifier's Lambda timeout."""
        with self.lock:
            started = min(self.running.values(), default=None)
        if started is None:
            return float("inf")
        return max(0.0, started + NOTIFIER_TIMEOUT_S - self.clock.now().timestamp())

    def take(self, n: int) -> list[tuple[Alert, str, int]]:
        with self.lock:
            batch, self.queue[:n] = self.queue[:n], []
            return batch

    def put_back(self, item: tuple[Alert, str, int]) -> None:
        with self.lock:
            self.queue.append(item)


class RecordingStore:
    """Notes successful claims and confirms (to check windows and counts), then does them."""

    def __init__(self, world: World) -> None:
        self._world, self._inner = world, world.store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def traced(*args: Any) -> Any:
            result = method(*args)
            self._world.trace.append(f"{name}{args[:2]} -> {result}")
            return result

        return traced

    def claim(self, problem, destination, occurrence, now, window_s, claim_id):
        prior = self._inner.claim(problem, destination, occurrence, now, window_s, claim_id)
        self._world.trace.append(f"claim{(problem, destination, now, claim_id)} -> {prior}")
        if prior is not None:
            self._world.claims.append((problem, destination, now))
        return prior

    def confirm(self, problem, destination, prior, told, now_iso):
        self._world.confirms.append((problem, destination, datetime.fromisoformat(now_iso).timestamp(), told))
        self._world.trace.append(f"confirm{(problem, destination, prior.claim_id, told)}")
        self._inner.confirm(problem, destination, prior, told, now_iso)

    def release(self, problem, destination, prior):
        self._world.trace.append(f"release{(problem, destination, prior.claim_id)}")
        self._inner.release(problem, destination, prior)


class Robots:
    """Both robots: accept unless the scheduler said this send fails."""

    def __init__(self, world: World) -> None:
        self._world = world

    def post(self, url, body, headers, timeouts) -> HttpReply:
        import json

        world = self._world
        world.sends += 1
        if world.fail_next_send:
            world.failures += 1
            return HttpReply(200, b'{"errcode":45009,"errmsg":"api freq out of limit"}' if "wecom" in url
                             else b'{"errcode":130101,"errmsg":"send too fast"}')
        document = json.loads(body)["markdown"]
        name = "robot:ops-wecom" if "wecom" in url else "robot:leads-dingtalk"
        world.inbox[name].append(told_in(document.get("content") or document.get("text")))
        return HttpReply(200, b'{"errcode":0,"errmsg":"ok"}')


class Topic:
    def __init__(self, world: World) -> None:
        self._world = world

    def publish(self, subject: str, message: str) -> None:
        world = self._world
        world.sends += 1
        if world.fail_next_send:
            world.failures += 1
            raise ConnectionError("throttled")
        world.inbox["sns"].append(told_in(message))


def notifier_for(world: World, turnstile: Turnstile | None, worker: int) -> Notifier:
    store: Any = RecordingStore(world)
    robots: Any = Robots(world)
    topic: Any = Topic(world)
    if turnstile is not None:
        store, robots, topic = (Gated(store, turnstile, worker, "store"), Gated(robots, turnstile, worker, "send"),
                                Gated(topic, turnstile, worker, "send"))
    return Notifier(store, robots, topic, SETTINGS, world.clock, wall_ms=lambda: 1_763_690_400_000)


def work(world: World, turnstile: Turnstile | None, worker: int, batch: int) -> None:
    """One notifier taking batches off the queue until it is empty (a failed record goes back on it)."""
    failure: BaseException | None = None
    try:
        while True:
            if turnstile is not None:
                turnstile.gate(worker, "receive")
            items = world.take(batch)
            if not items:
                return
            with world.lock:
                world.running[worker] = world.clock.now().timestamp()
            notifier = notifier_for(world, turnstile, worker)
            notifier.recall(a.id or m for a, m, _ in items)
            for alert, message_id, received in items:
                try:
                    notifier.handle(alert, message_id)
                except AlertNotDelivered:
                    world.put_back((alert, message_id, received + 1))
            with world.lock:
                del world.running[worker]
    except BaseException as exc:  # surfaced by the test, not lost in the thread
        failure = exc
    finally:
        if turnstile is not None:
            turnstile.finish(worker, failure)


def digests(world: World, turnstile: Turnstile, worker: int, runs: int) -> None:
    """The alert-digest schedule firing `runs` times while the notifiers work."""
    failure: BaseException | None = None
    try:
        for _ in range(runs):
            turnstile.gate(worker, "schedule")
            with world.lock:
                world.running[worker] = world.clock.now().timestamp()
            notifier_for(world, turnstile, worker).digest(world.clock.now())
            with world.lock:
                del world.running[worker]
    except BaseException as exc:
        failure = exc
    finally:
        turnstile.finish(worker, failure)
