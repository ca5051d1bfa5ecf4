"""The local runtime: moto is the embedded AWS; this plays the Lambda service and nothing more.

Each function runs in its own worker process (`infra.local.environments`), as Lambda gives
each function its own execution environment. Tests may replace a function by an in-process
callable (`handler_overrides`). Heavy imports (boto3, moto) happen inside start(), so
importing this module stays cheap.

`timers_follow_clock=True` (tests) puts the runtime's timers on its injectable clock: the embedded
AWS reads it (SQS visibility and delays, message and stream timestamps: `infra.local.aws_clock`),
and a function's timeout is not enforced in real time (only a generous bound ends a hung
worker). With a manual clock, a message a handler held back returns when the test moves the
clock past it, however busy the machine is; by default (`orderhub run`, the demo) AWS keeps
real time and timeouts are Lambda's.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.local.environments import HUNG_WORKER_S, INIT_TIMEOUT_S, FunctionPool, HandlerError, LambdaContext

if TYPE_CHECKING:
    from infra.config import HubConfig
    from infra.local.clock import Clock
    from infra.topology import Function, Topology

log = logging.getLogger("orderhub.local")

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "ap-southeast-1"
MAX_SHARD_ITERATORS = 10_000

Handler = Callable[[dict, Any], Any]


# --------------------------------------------------------------------------- the runtime (parent process)


class LocalRuntime:
    """moto plus the Lambda service's part: HTTP API, event source pollers, schedules and TTL."""

    def __init__(self, config: HubConfig, port: int = 8080, host: str = "127.0.0.1", moto_port: int | None = None,
                 clock: Clock | None = None, *, topology: Topology | None = None,
                 handler_overrides: dict[str, Handler] | None = None, prewarm: bool = True,
                 max_concurrency: int = 2, batching_windows: bool = True, ttl_interval_s: float = 30.0,
                 function_logs: Path | None = None, timers_follow_clock: bool = False) -> None:
        from infra.local.clock import SystemClock
        from infra.topology import build_topology

        self.config = config
        self.topology = topology or build_topology(config.topology_subscribers(), config.business_timezone,
                                                   config.provider_confirmed())
        self.clock = clock or SystemClock()
        self.host, self._port, self._moto_port = host, port, moto_port
        self._overrides = dict(handler_overrides or {})
        unknown = set(self._overrides) - {f.name for f in self.topology.functions}
        if unknown:
            raise KeyError(f"handler_overrides name no declared function: {sorted(unknown)}")
        for fn in self.topology.functions:  # what CreateEventSourceMapping refuses in AWS
            for trig in fn.triggers:
                queue = getattr(trig, "queue", None)
                if queue and fn.timeout_s > self.topology.queue(queue).visibility_timeout_s:
                    raise ValueError(f"{fn.name}: timeout {fn.timeout_s}s exceeds the visibility timeout of "
                                     f"queue {queue}; Lambda would refuse this event source mapping")
        self._prewarm, self._max_concurrency = prewarm, max_concurrency
        self._timers_follow_clock = timers_follow_clock
        self._clock_followed = False
        self._windows, self._ttl_interval = batching_windows, ttl_interval_s
        self._function_logs = function_logs
        if function_logs:
            function_logs.mkdir(parents=True, exist_ok=True)
        self.endpoint_url = self.api_url = ""
        self.region = DEFAULT_REGION
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.resources: Any = None
        self.scheduler: Any = None
        self.ttl_sweeper: Any = None
        self.pollers: list[Any] = []
        self._pools: dict[str, FunctionPool] = {}
        self._override_slots = {name: threading.Semaphore(max_concurrency) for name in self._overrides}
        self._saved_env: dict[str, str | None] = {}
        self._moto: Any = None
        self._http: Any = None
        self._lock = threading.Lock()
        self._activity = 0
        self._in_flight = 0
        self._downstream: dict[str, list[Any]] = {}

    # -- lifecycle

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        from infra.local import aws_clock, http_api, resources, scheduler, ttl
        from infra.local.clock import SystemClock

        # Handlers (and the CLI, tests) reach moto through the ordinary boto3 configuration chain.
        self._setenv("AWS_DEFAULT_REGION", DEFAULT_REGION, keep_existing=True)
        self._setenv("AWS_ACCESS_KEY_ID", "testing", keep_existing=True)
        self._setenv("AWS_SECRET_ACCESS_KEY", "testing", keep_existing=True)
        self.region = os.environ["AWS_DEFAULT_REGION"]
        werkzeug = logging.getLogger("werkzeug")
        if werkzeug.level == logging.NOTSET:
            werkzeug.setLevel(logging.WARNING)  # moto's server would log every AWS call
        # moto reads this runtime's clock, or real time: never whatever an earlier patch left in moto.
        aws_clock.follow(self, self.clock if self._timers_follow_clock else SystemClock())
        self._clock_followed = True
        port = _check_port(self._moto_port or 0)  # moto's server thread would hang on a taken port
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()
        self.endpoint_url = f"http://127.0.0.1:{self._moto.get_host_and_port()[1]}"
        self._setenv("AWS_ENDPOINT_URL", self.endpoint_url)

        session = boto3.session.Session(region_name=self.region)
        clients: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in clients:
                clients[service] = session.client(service, endpoint_url=self.endpoint_url)
            return clients[service]

        self.resources = res = resources.provision(self.topology, self.config, client, self.region, ACCOUNT_ID)
        for fn in self.topology.functions:
            if fn.name not in self._overrides:
                env = resources.worker_environment(fn, resources.function_environment(fn, self.config, res),
                                                   self.physical_name(fn.name), self.region)
                spec = {"module": fn.module, "physical_name": self.physical_name(fn.name),
                        "memory_mb": fn.memory_mb, "arn": self.function_arn(fn.name)}
                log_path = self._function_logs / f"{fn.name}.log" if self._function_logs else None
                self._pools[fn.name] = FunctionPool(fn, spec, env, self._max_concurrency, log_path,
                                                    real_time_limits=not self._timers_follow_clock)
                if self._prewarm:  # one environment per trigger that can invoke it at the same time
                    self._pools[fn.name].prewarm(max(1, len(fn.triggers)))
        self.ttl_deletions = ttl.TtlDeletions()
        self.pollers = self._event_source_mappings(client)
        self._downstream = {fn.name: _downstream_pollers(self.topology, fn, self.pollers)
                            for fn in self.topology.functions}
        self._http = http_api.HttpApi(self.topology.routes, self.invoke, self.host, self._port, ACCOUNT_ID)
        self.api_url = self._http.url
        self.scheduler = scheduler.Scheduler(self.topology.schedules, self.clock, self.invoke)
        self.ttl_sweeper = ttl.TtlSweeper([(t, res.tables[t.name]) for t in self.topology.tables],
                                          client("dynamodb"), self.clock, self.ttl_deletions, self._ttl_interval)
        for poller in self.pollers:
            poller.start()
        self.clock.subscribe(self._clock_moved)
        self._http.start()
        self.scheduler.start()
        self.ttl_sweeper.start()
        log.info("orderhub local runtime: API %s, AWS endpoint %s, %d poller(s), %d schedule(s)",
                 self.api_url, self.endpoint_url, len(self.pollers), len(self.topology.schedules))

    def _event_source_mappings(self, client: Callable[[str], Any]) -> list[Any]:
        """One poller per declared trigger."""
        from infra.local.pollers import SqsPoller, StreamPoller
        from infra.topology import SqsTrigger

        res, window = self.resources, None if self._windows else 0.0
        out: list[Any] = []
        for fn in self.topology.functions:
            for trig in fn.triggers:
                if isinstance(trig, SqsTrigger):
                    out.append(SqsPoller(
                        fn.name, trig, res.queue_urls[trig.queue], res.queue_arns[trig.queue], self.region,
                        client("sqs"), self.invoke, batching_window_s=window,
                        visibility_timeout_s=self.topology.queue(trig.queue).visibility_timeout_s))
                else:
                    out.append(StreamPoller(
                        fn.name, trig, res.stream_arns[trig.table], self.function_arn(fn.name),
                        res.queue_urls[trig.on_failure_queue], self.region, client("dynamodbstreams"),
                        client("sqs"), self.invoke, ttl_deletes=self.ttl_deletions.pop, batching_window_s=window,
                        housekeeping=partial(_bound_shard_iterators, self.region),
                        now=self.clock.now if self._timers_follow_clock else None))
        return out

    def stop(self) -> None:
        """Stop everything this runtime started, newest first; safe after a partial start."""
        self.clock.unsubscribe(self._clock_moved)
        for part in (self.scheduler, self.ttl_sweeper):
            if part is not None:
                part.stop()
        for poller in self.pollers:
            poller.stop()
        for poller in self.pollers:
            poller.join()
        if self._http is not None:
            self._http.stop()
        for pool in self._pools.values():
            pool.close()
        if self._moto is not None:
            self._moto.stop()
        if self._clock_followed:
            from infra.local import aws_clock

            aws_clock.release(self)
            self._clock_followed = False
        self.scheduler = self.ttl_sweeper = self._http = self._moto = None
        self.pollers, self._pools = [], {}
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def _clock_moved(self, now: object) -> None:
        # Messages held back until a time now past may be visible: look at once, as Lambda's pollers would.
        for poller in self.pollers:
            poller.wake()

    def _setenv(self, key: str, value: str, keep_existing: bool = False) -> None:
        if keep_existing and os.environ.get(key):
            return
        self._saved_env.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    # -- the Lambda service's part

    def physical_name(self, function: str) -> str:
        return self.topology.physical_name(self.config.stage, function)

    def function_arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.physical_name(function)}"

    def invoke(self, function: str, event: dict) -> Any:
        """Invoke a function synchronously; raises HandlerError when it fails (logged and counted here)."""
        fn = self.topology.function(function)
        with self._lock:
            self._activity += 1
            self._in_flight += 1
            self.invocations[function] += 1
        try:
            if function in self._overrides:
                return self._invoke_override(fn, event)
            return self._pools[function].invoke(event)
        except Exception as exc:
            self.errors[function] += 1
            if isinstance(exc, HandlerError):
                log.error("%s failed: %s: %s", function, exc.error_type, exc.error_message)
            else:
                log.exception("%s failed", function)
            raise
        finally:
            with self._lock:
                self._in_flight -= 1
                self._activity += 1
            for poller in self._downstream.get(function, ()):  # what it wrote is their work now
                poller.wake()

    def _invoke_override(self, fn: Function, event: dict) -> Any:
        deadline_ms = int((time.time() + fn.timeout_s) * 1000)
        context = LambdaContext(self.physical_name(fn.name), fn.memory_mb, self.function_arn(fn.name), deadline_ms)
        with self._override_slots[fn.name]:
            # Round-trip through JSON both ways, as Lambda does: no shared objects, no non-JSON replies.
            return json.loads(json.dumps(self._overrides[fn.name](json.loads(json.dumps(event)), context)))

    def wait_until_idle(self, timeout: float = 120.0) -> None:
        """Return once every poller found nothing to do after the last invocation anywhere ended.

        Messages a failed batch left invisible (visibility timeout, a handler's backoff) do
        not count: they are waiting, not work in progress. Raises TimeoutError otherwise.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mark, seen = time.monotonic(), self._activity
            for poller in self.pollers:
                poller.wake()
            while time.monotonic() < deadline and self._activity == seen:
                caught_up = all(p.last_empty_poll >= mark and not p.busy for p in self.pollers)
                if caught_up and self._in_flight == 0 and self._activity == seen:
                    return
                time.sleep(0.005)
        busy = [p.name for p in self.pollers if p.busy] + [f"{self._in_flight} invocation(s)"] * bool(self._in_flight)
        raise TimeoutError(f"local runtime not idle after {timeout}s; busy: {busy or 'pollers not caught up'}")

    def warm(self) -> dict[str, float | str]:
        """Wait for the prewarmed workers' init: init ms per function (its cold start), or the init error."""
        out: dict[str, float | str] = {}
        for name, pool in self._pools.items():
            for worker in list(pool._all):
                try:
                    worker.await_ready(name, HUNG_WORKER_S if self._timers_follow_clock else INIT_TIMEOUT_S)
                    out[name] = worker.init_ms or 0.0
                except (HandlerError, EOFError, OSError) as exc:
                    out[name] = str(exc)
        return out


def _downstream_pollers(topology: Topology, fn: Function, pollers: list[Any]) -> list[Any]:
    """Pollers that may find new work after `fn` ran, from its declared access (all, if it declares none).

    Waking only those keeps idle pollers slow and cheap (each poll is a moto call) without
    delaying the hand-off along the pipeline.
    """
    if not fn.access:
        return list(pollers)
    queues: set[str] = set()
    tables: set[str] = set()
    for access in fn.access:
        if access.kind == "queue:send":
            queues |= {q.name for q in topology.queues} if access.resource == "*" else {access.resource}
        elif access.kind == "bus:put":
            queues |= {r.target_queue for r in topology.rules if access.resource in ("*", r.bus)}
        elif access.kind == "table:write":
            tables |= {t.name for t in topology.tables} if access.resource == "*" else {access.resource}
    return [p for p in pollers if getattr(p.trigger, "queue", None) in queues
            or getattr(p.trigger, "table", None) in tables]


def _bound_shard_iterators(region: str) -> None:
    """moto keeps every shard iterator it hands out (one per GetRecords) for ever, where AWS expires
    them after 15 minutes; drop the oldest beyond a bound so a long `orderhub run` stays small."""
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    issued = dynamodbstreams_backends[ACCOUNT_ID][region].shard_iterators
    excess = len(issued) - MAX_SHARD_ITERATORS
    if excess > 0:
        for arn in list(issued)[:excess]:  # insertion order is issue order; ours is always the newest
            issued.pop(arn, None)


def _check_port(port: int) -> int:
    if port:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise OSError(f"port {port} for the embedded AWS endpoint is taken: {exc}") from None
    return port

