"""The local runtime: moto is the embedded AWS; this plays the Lambda service and nothing more.

Each function runs in its own worker process (an "execution environment"): spawned with
exactly the environment Lambda would give it (its resolved topology variables, the
Lambda-reserved ones, TZ=UTC), it imports `functions.<name>.handler` once (a real cold
start) and then serves one invocation at a time over a socket. Functions therefore never
see each other's variables or module state (Powertools metrics and batch processors are
module globals), a timeout can be enforced by ending the process, and the cold start is
measurable. Tests may replace a function by an in-process callable (`handler_overrides`).

This module is also the worker's entry point (`python -m infra.local.runtime`), which is
why it imports only the standard library at the top and its siblings inside start().
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.config import HubConfig
    from infra.local.clock import Clock
    from infra.topology import Function, Topology

log = logging.getLogger("orderhub.local")

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "ap-southeast-1"
INIT_TIMEOUT_S = 30.0
MAX_SHARD_ITERATORS = 10_000

Handler = Callable[[dict, Any], Any]


class HandlerError(Exception):
    """A function invocation failed the way Lambda reports it: errorType and errorMessage."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function, self.error_type, self.error_message = function, error_type, message


class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, memory_mb: int, arn: str, deadline_ms: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = arn
        self.memory_limit_in_mb = str(memory_mb)  # a string in the real runtime too (read from the environment)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


# --------------------------------------------------------------------------- worker (child process)


def _worker_main(fd: int, spec: dict) -> None:
    conn = Connection(fd)
    started = time.perf_counter()
    try:
        handler = importlib.import_module(spec["module"]).lambda_handler
    except BaseException as exc:  # reported to the parent as Lambda's init error
        traceback.print_exc()
        conn.send(("init_error", ("Runtime.ImportModuleError", f"{type(exc).__name__}: {exc}")))
        return
    conn.send(("ready", (time.perf_counter() - started) * 1000))
    while True:
        try:
            event, deadline_ms = conn.recv()
        except (EOFError, OSError):
            return  # the runtime went away
        context = LambdaContext(spec["physical_name"], spec["memory_mb"], spec["arn"], deadline_ms)
        try:
            result = handler(event, context)
        except Exception as exc:  # reported to the caller like Lambda's Unhandled error
            print(f"[ERROR] {type(exc).__name__}: {exc}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            conn.send(("error", (type(exc).__name__, str(exc))))
            continue
        try:
            conn.send(("ok", json.loads(json.dumps(result))))  # Lambda hands the caller JSON
        except (TypeError, ValueError) as exc:
            conn.send(("error", ("Runtime.MarshalError", f"Unable to marshal response: {exc}")))


class _Worker:
    def __init__(self, spec: dict, env: dict[str, str], log_path: Path | None = None) -> None:
        parent, child = socket.socketpair()
        # Function logs go to the console, or appended to a file per function (what CloudWatch would hold).
        log = log_path.open("ab") if log_path else None
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [sys.executable, "-m", "infra.local.runtime", str(child.fileno()), json.dumps(spec)],
            env=env, cwd=REPO_ROOT, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT if log else None,
            start_new_session=True)  # Ctrl-C reaches the runtime, which then ends its workers in order
        if log:
            log.close()  # the child holds its own descriptor
        child.close()
        self.conn = Connection(parent.detach())
        self.ready = False
        self.init_ms: float | None = None
        self._ready_lock = threading.Lock()

    def await_ready(self, name: str) -> None:
        with self._ready_lock:
            if not self.ready:
                self._await_ready(name)

    def _await_ready(self, name: str) -> None:
        if not self.conn.poll(INIT_TIMEOUT_S):
            raise HandlerError(name, "Runtime.InitTimeout", f"init did not finish in {INIT_TIMEOUT_S:.0f}s")
        kind, payload = self.conn.recv()
        if kind == "init_error":
            raise HandlerError(name, *payload)
        self.ready, self.init_ms = True, payload
        log.info("%s: cold start, init %.0f ms", name, payload)

    def invoke(self, name: str, event: dict, timeout_s: float) -> Any:
        self.await_ready(name)
        self.conn.send((event, int((time.time() + timeout_s) * 1000)))
        if not self.conn.poll(timeout_s + 0.5):
            raise TimeoutError(f"Task timed out after {timeout_s:.2f} seconds")
        kind, payload = self.conn.recv()
        if kind == "error":
            raise HandlerError(name, *payload)
        return payload

    def kill(self) -> None:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


class _FunctionPool:
    """Execution environments of one function: reused while warm, a new one (cold) when all are busy."""

    def __init__(self, fn: Function, spec: dict, env: dict[str, str], max_workers: int,
                 log_path: Path | None = None) -> None:
        self.fn, self._spec, self._env, self._max = fn, spec, env, max_workers
        self._log_path = log_path
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._cond = threading.Condition()
        self._closed = False

    def prewarm(self, count: int = 1) -> None:
        with self._cond:
            while len(self._all) < min(count, self._max):
                self._idle.append(self._spawn_locked())

    def _spawn_locked(self) -> _Worker:
        worker = _Worker(self._spec, self._env, self._log_path)
        self._all.append(worker)
        return worker

    def invoke(self, event: dict) -> Any:
        with self._cond:
            while not self._idle and len(self._all) >= self._max and not self._closed:
                self._cond.wait()
            if self._closed:
                raise HandlerError(self.fn.name, "Runtime.Stopped", "the local runtime is stopping")
            worker = self._idle.pop() if self._idle else self._spawn_locked()
        healthy = False
        try:
            result = worker.invoke(self.fn.name, event, self.fn.timeout_s)
            healthy = True
            return result
        except HandlerError as exc:
            healthy = exc.error_type not in ("Runtime.ImportModuleError", "Runtime.InitTimeout")
            raise
        except TimeoutError as exc:  # Lambda ends the environment of a timed-out invocation
            raise HandlerError(self.fn.name, "Sandbox.Timedout", str(exc)) from None
        except (EOFError, OSError) as exc:
            raise HandlerError(self.fn.name, "Runtime.ExitError", f"the worker process died: {exc!r}") from None
        finally:
            with self._cond:
                if healthy and not self._closed:
                    self._idle.append(worker)
                else:
                    self._all.remove(worker)
                    threading.Thread(target=worker.kill, daemon=True).start()
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers, self._all, self._idle = list(self._all), [], []
            self._cond.notify_all()
        for worker in workers:
            worker.kill()


# --------------------------------------------------------------------------- the runtime (parent process)


class LocalRuntime:
    """moto plus the Lambda service's part: HTTP API, event source pollers, schedules and TTL."""

    def __init__(self, config: HubConfig, port: int = 8080, host: str = "127.0.0.1", moto_port: int | None = None,
                 clock: Clock | None = None, *, topology: Topology | None = None,
                 handler_overrides: dict[str, Handler] | None = None, prewarm: bool = True,
                 max_concurrency: int = 2, batching_windows: bool = True, ttl_interval_s: float = 30.0,
                 function_logs: Path | None = None) -> None:
        from infra.local.clock import SystemClock
        from infra.topology import build_topology

        self.config = config
        self.topology = topology or build_topology(config.topology_subscribers(), config.business_timezone)
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
        self._pools: dict[str, _FunctionPool] = {}
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

        from infra.local import http_api, resources, scheduler, ttl

        # Handlers (and the CLI, tests) reach moto through the ordinary boto3 configuration chain.
        self._setenv("AWS_DEFAULT_REGION", DEFAULT_REGION, keep_existing=True)
        self._setenv("AWS_ACCESS_KEY_ID", "testing", keep_existing=True)
        self._setenv("AWS_SECRET_ACCESS_KEY", "testing", keep_existing=True)
        self.region = os.environ["AWS_DEFAULT_REGION"]
        werkzeug = logging.getLogger("werkzeug")
        if werkzeug.level == logging.NOTSET:
            werkzeug.setLevel(logging.WARNING)  # moto's server would log every AWS call
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
                self._pools[fn.name] = _FunctionPool(fn, spec, env, self._max_concurrency, log_path)
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
                        housekeeping=partial(_bound_shard_iterators, self.region)))
        return out

    def stop(self) -> None:
        """Stop everything this runtime started, newest first; safe after a partial start."""
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
        self.scheduler = self.ttl_sweeper = self._http = self._moto = None
        self.pollers, self._pools = [], {}
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def _setenv(self, key: str, value: str, keep_existing: bool = False) -> None:
        if keep_existing and os.environ.get(key):
            return
        self._saved_env.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    # -- the Lambda service's part

    def physical_name(self, function: str) -> str:
        return f"{self.topology.app}-{self.config.stage}-{function}"

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

    def wait_until_idle(self, timeout: float = 30.0) -> None:
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
                    worker.await_ready(name)
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

if __name__ == "__main__":
    _worker_main(int(sys.argv[1]), json.loads(sys.argv[2]))
