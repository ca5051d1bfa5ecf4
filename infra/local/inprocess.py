"""The hub in one process: the real handlers on moto, driven as Lambda drives them (reliability tier, benchmarks).

- AWS is moto (mock_aws), provisioned from the topology exactly as the local runtime does it.
- Event sources are infra.local.pollers (the local runtime's SQS and stream pollers: partial
  batch failures, visibility, redrive to the DLQ after maxReceiveCount, stream checkpoints,
  bisect, on-failure), polled here one step at a time instead of by threads.
- Time, for AWS, is virtual: moto reads the clock through `moto.core.utils.utcnow`, so visibility
  timeouts, backoffs and redrives follow `VirtualClock.advance()` and a 30-minute outage takes
  milliseconds. The hub's own code keeps the real clock (signatures, received_at).
- Faults are injected at the botocore layer (`Faults`): a share of the hub's AWS calls are
  throttled, fail with a 5xx, time out before reaching AWS, or time out after AWS applied them
  (the reply is lost). Only calls made by hub code are touched, never the harness's own.
- Each function runs in one execution environment (calls are serialised, as one Lambda
  environment runs one invocation at a time); `environments(fn, n)` makes n independent copies
  of a handler module for scenarios that need real concurrency.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.endpoint
import botocore.handlers
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from infra.local.pollers import SqsPoller, StreamPoller
from infra.local.resources import Provisioned, function_environment, provision
from infra.topology import SqsTrigger, Topology

REGION = "ap-southeast-1"
ACCOUNT = "123456789012"
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------ virtual time

_TICK = timedelta(microseconds=1)


class VirtualClock:
    """AWS's clock (moto's), moved by hand, and by a microsecond each time it is read: time never
    stands still (moto makes a message visible when now > visible_at, as time passing would)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC)
        self._now = self.start
        self._naive = self._now.replace(tzinfo=None)  # moto keeps naive UTC; read a million times

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._naive = max(self._naive, self._now.replace(tzinfo=None))

    def _read(self) -> datetime:
        self._naive += _TICK
        return self._naive

    @property
    def elapsed_s(self) -> float:
        return (self._now - self.start).total_seconds()

    @contextmanager
    def installed(self) -> Iterator[VirtualClock]:
        import moto.core.utils as moto_utils

        real = moto_utils.utcnow
        moto_utils.utcnow = self._read
        try:
            yield self
        finally:
            moto_utils.utcnow = real


# ------------------------------------------------------------------------------------ faults


_THROTTLE_CODE = {"dynamodb": "ProvisionedThroughputExceededException", "sqs": "RequestThrottled",
                  "eventbridge": "ThrottlingException", "sns": "Throttling"}
_JSON_TYPE_PREFIX = {"dynamodb": "com.amazonaws.dynamodb.v20120810#", "sqs": "com.amazonaws.sqs#"}
FAULT_KINDS = ("throttled", "server_error", "timeout_before", "timeout_after")


class Faults:
    """Fails `rate` of the hub's AWS calls, each in one of FAULT_KINDS, reproducibly (seeded).

    botocore retries them as it does in Lambda (standard mode, 4 attempts); its backoff sleeps
    are skipped here (counted in `slept_s`). What still fails after the retries reaches the
    handler, which must leave the work for SQS or the stream to hand out again.
    """

    def __init__(self, rate: float = 0.0, seed: int = 20, kinds: tuple[str, ...] = FAULT_KINDS) -> None:
        self.rate, self.kinds = rate, kinds
        self._rng = random.Random(seed)  # noqa: S311 - reproducible fault schedule
        self._lock = threading.Lock()
        self._armed = threading.local()
        self.injected: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.slept_s = 0.0

    @contextmanager
    def hub_code(self) -> Iterator[None]:
        """AWS calls made inside this block (by this thread) are the hub's: faults apply."""
        previous = getattr(self._armed, "on", False)
        self._armed.on = True
        try:
            yield
        finally:
            self._armed.on = previous

    @contextmanager
    def installed(self) -> Iterator[Faults]:
        """Hook every botocore client created meanwhile, ahead of moto's stubber; skip retry sleeps."""
        from moto.core.models import botocore_stubber

        entry = ("before-send", self._before_send)
        handlers = botocore.handlers.BUILTIN_HANDLERS
        handlers.insert(handlers.index(("before-send", botocore_stubber)), entry)
        real_sleep = botocore.endpoint.time.sleep
        botocore.endpoint.time.sleep = self._sleep  # type: ignore[assignment]
        self._stubber = botocore_stubber
        try:
            yield self
        finally:
            handlers.remove(entry)
            botocore.endpoint.time.sleep = real_sleep  # type: ignore[assignment]

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept_s += seconds

    def _before_send(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse | None:
        if not getattr(self._armed, "on", False):
            return None
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            self.calls[f"{service}.{operation}"] += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
        if kind == "throttled":
            return _error(service, 400, _THROTTLE_CODE.get(service, "ThrottlingException"))
        if kind == "server_error":
            return _error(service, 500, "InternalFailure")
        if kind == "timeout_after":
            self._stubber(event_name=event_name, request=request)  # AWS applies it; the answer is lost
        raise ReadTimeoutError(endpoint_url=request.url)


def _error(service: str, status: int, code: str) -> AWSResponse:
    from moto.core.botocore_stubber import MockRawResponse

    body = json.dumps({"__type": _JSON_TYPE_PREFIX.get(service, "") + code, "message": "injected fault"})
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
    return AWSResponse("https://injected", status, headers, MockRawResponse(body.encode()))


# ------------------------------------------------------------------------------------ the Lambda service


class Context:
    def __init__(self, function: str) -> None:
        self.function_name = f"orderhub-rel-{function}"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.aws_request_id = "req-rel"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@dataclass
class Environment:
    """One execution environment of a function: its own copy of the handler module."""

    function: str
    module: ModuleType
    lock: threading.Lock = field(default_factory=threading.Lock)


def _fresh_module(function: str, copy: int) -> ModuleType:
    path = REPO / "functions" / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"functions.{function}.handler_env{copy}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _NoWait(threading.Event):
    """A stop event that is never set and never waits: the pollers' pauses between retries are real
    seconds meant for a live runtime; here the next step comes when the harness polls again."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


class LambdaService:
    """Invokes handlers in this process (faults armed), and plays their event source mappings."""

    def __init__(self, topology: Topology, res: Provisioned, faults: Faults, exclude: tuple[str, ...] = ()) -> None:
        self.topology, self.res, self.faults = topology, res, faults
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # function -> SQS message id -> times the message was handed to it
        self.records_seen: dict[str, Counter[str]] = {}
        self._envs: dict[str, list[Environment]] = {}
        self._rr: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.sqs = client("sqs")
        self.pollers: list[Any] = []
        for fn in topology.functions:
            if fn.name in exclude:
                continue
            for trig in fn.triggers:
                if isinstance(trig, SqsTrigger):
                    self.pollers.append(SqsPoller(
                        fn.name, trig, res.queue_urls[trig.queue], res.queue_arns[trig.queue], REGION, self.sqs,
                        self.invoke, batching_window_s=0.0,
                        visibility_timeout_s=topology.queue(trig.queue).visibility_timeout_s))
                else:
                    self.pollers.append(StreamPoller(
                        fn.name, trig, res.stream_arns[trig.table], Context(fn.name).invoked_function_arn,
                        res.queue_urls[trig.on_failure_queue], REGION, client("dynamodbstreams"), self.sqs,
                        self.invoke, batching_window_s=0.0))
        for poller in self.pollers:
            poller._stop = _NoWait()

    def environments(self, function: str, count: int) -> None:
        """Give `function` `count` independent execution environments (concurrent invocations)."""
        self._envs[function] = [Environment(function, _fresh_module(function, i)) for i in range(count)]

    def _environment(self, function: str) -> Environment:
        with self._lock:
            envs = self._envs.get(function)
            if envs is None:
                envs = self._envs[function] = [Environment(function, _fresh_module(function, 0))]
            free = [e for e in envs if not e.lock.locked()]
            self._rr[function] += 1
            return (free or envs)[self._rr[function] % len(free or envs)]

    def invoke(self, function: str, event: dict) -> Any:
        env = self._environment(function)
        with self._lock:
            seen = self.records_seen.setdefault(function, Counter())
            seen.update(r["messageId"] for r in event.get("Records", ()) if "messageId" in r)
        with env.lock, self.faults.hub_code():
            with self._lock:
                self.invocations[function] += 1
            try:
                # Lambda hands over JSON and takes JSON back: no shared objects.
                return json.loads(json.dumps(env.module.lambda_handler(json.loads(json.dumps(event)),
                                                                        Context(function))))
            except Exception:
                with self._lock:
                    self.errors[function] += 1
                raise

    def drain(self, max_rounds: int = 10_000) -> int:
        """Poll every event source until none finds work now; the number of batches handled."""
        batches = 0
        for _ in range(max_rounds):
            worked = [poller.poll_once() for poller in self.pollers]
            if not any(worked):
                return batches
            batches += sum(worked)
        raise RuntimeError("event sources still busy after max_rounds")

    def backlog(self, include_dead_letters: bool = False) -> dict[str, int]:
        """Messages in each consumed queue (and each DLQ, if asked), in flight (invisible) included."""
        consumed = {p.trigger.queue for p in self.pollers if isinstance(p, SqsPoller)}
        out = {}
        for name, url in self.res.queue_urls.items():
            if not (name in consumed or (include_dead_letters and name.endswith("-dlq"))):
                continue
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"])["Attributes"]
            out[name] = sum(int(v) for v in attrs.values())
        return out

    def settle(self, clock: VirtualClock, step_s: float = 15.0, max_s: float = 6 * 3600,
               until: Any = None) -> None:
        """Drain, then move AWS's clock a step so held-back messages come back, until every work
        queue is empty (or `until()` holds); max_s bounds the virtual time spent."""
        deadline = clock.elapsed_s + max_s
        while True:
            self.drain()
            if (until() if until is not None else not any(self.backlog().values())):
                return
            if clock.elapsed_s >= deadline:
                raise TimeoutError(f"not settled after {max_s} virtual seconds: {self.backlog()}")
            clock.advance(step_s)


    def redrive_dead_letters(self) -> dict[str, int]:
        """What an operator does once the cause is gone: `orderhub dlq redrive` of every non-empty DLQ."""
        from infra.cli import redrive

        moved = {}
        for name, depth in self.backlog(include_dead_letters=True).items():
            if name.endswith("-dlq") and depth:
                moved[name], failed = redrive(self.sqs, self.res.queue_urls[name],
                                              self.res.queue_urls[name.removesuffix("-dlq")])
                assert not failed, f"redrive of {name} failed for {failed} message(s)"
        return moved


def client(service: str) -> Any:
    if service == "dynamodbstreams":
        # moto in-process does not route the ARN-derived stream endpoint; the regional one is the same API.
        return boto3.client(service, region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com")
    return boto3.client(service, region_name=REGION)


def provision_hub(topology: Topology, config: Any) -> Provisioned:
    return provision(topology, config, client, REGION, ACCOUNT)


def hub_environment(topology: Topology, config: Any, res: Provisioned) -> dict[str, str]:
    """Every function's environment at once: in one process they must agree, and they do."""
    merged: dict[str, str] = {}
    for fn in topology.functions:
        for key, value in function_environment(fn, config, res).items():
            if merged.setdefault(key, value) != value:
                raise ValueError(f"{fn.name}: {key} differs between functions; cannot share one process")
    return merged


@contextmanager
def moto_fast_paths() -> Iterator[None]:
    """Three of moto's hot spots, made cheap without changing what they compute (in-process hub only):
    - it compiles eight JSONPath expressions (PLY, ~1 ms each) for every event and target it routes,
      the same expressions every time: compile each once;
    - it converts the same few hundred action and parameter names to snake case on every request:
      remember them;
    - SQS asks the time for every message of a queue on every call (whether each is visible), and
      each ask rebuilds the epoch: subtract a constant instead.
    """
    import functools

    import jsonpath_ng.ext
    import moto.core.responses as moto_responses
    import moto.core.utils as moto_utils
    import moto.sqs.models as moto_sqs

    epoch = datetime(1970, 1, 1)

    def unix_time(dt: datetime | None = None) -> float:
        return ((dt or moto_utils.utcnow()) - epoch).total_seconds()

    def unix_time_millis(dt: datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    snake_case = functools.lru_cache(maxsize=8192)(moto_utils.camelcase_to_underscores)
    compiled = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
    patches: list[tuple[Any, str, Any]] = [(jsonpath_ng.ext, "parse", compiled)]
    for module in (moto_utils, moto_sqs):
        patches += [(module, "unix_time", unix_time), (module, "unix_time_millis", unix_time_millis)]
    for module in (moto_utils, moto_responses, moto_sqs):
        patches.append((module, "camelcase_to_underscores", snake_case))
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


@contextmanager
def atomic_conditional_writes() -> Iterator[None]:
    """DynamoDB applies a conditional write atomically; moto checks and writes in Python without a
    lock. For scenarios with concurrent writers, make moto's writes atomic as DynamoDB's are."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    originals = {name: getattr(DynamoDBBackend, name) for name in ("put_item", "update_item", "delete_item")}

    def locked(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)
        return call

    for name, original in originals.items():
        setattr(DynamoDBBackend, name, locked(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(DynamoDBBackend, name, original)


# ------------------------------------------------------------------------------------ the whole hub


@dataclass
class InProcessHub:
    """moto provisioned from the topology, the downstream and robot stand-ins, AWS's clock virtual,
    the fault injector installed (rate 0 until raised)."""

    config: Any
    topology: Topology
    res: Provisioned
    receiver: Any  # infra.downstream.DownstreamReceiver, for the webhook subscribers
    inboxes: dict[str, Any]  # subscriber -> infra.downstream.Inbox
    paths: dict[str, str]
    clock: VirtualClock
    faults: Faults
    robots: Any  # infra.robots.RobotServer, on the virtual clock

    def service(self, exclude: tuple[str, ...] = ()) -> LambdaService:
        return LambdaService(self.topology, self.res, self.faults, exclude=exclude)


def reset_lambda_state() -> None:
    """Clients and caches live as long as an execution environment; a new hub starts cold."""
    from aws_lambda_powertools.utilities import parameters

    from orderhub import settings
    from orderhub.aws import reset_clients

    reset_clients()
    parameters.clear_caches()
    settings._built.clear()


@contextmanager
def inprocess_hub(config: Any) -> Iterator[InProcessHub]:
    """The hub of `config`, in this process, for the duration of the block (environment restored after)."""
    from moto import mock_aws

    from infra.downstream import by_subscriber, receiver_for
    from infra.robots import robots_for
    from infra.topology import build_topology

    saved = dict(os.environ)
    os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    clock, faults = VirtualClock(), Faults()
    receiver, config, paths = receiver_for(config)
    robots, config = robots_for(config, clock=lambda: clock.now().timestamp())
    topology = build_topology(config.topology_subscribers(), config.business_timezone)
    try:
        with receiver, robots, mock_aws(), clock.installed(), faults.installed(), moto_fast_paths():
            reset_lambda_state()
            res = provision_hub(topology, config)
            os.environ.update(hub_environment(topology, config, res))
            # Per-delivery INFO lines would be most of the work; warnings and errors still show.
            os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            try:
                yield InProcessHub(config, topology, res, receiver, by_subscriber(receiver, paths), paths, clock,
                                   faults, robots)
            finally:
                reset_lambda_state()
    finally:
        os.environ.clear()
        os.environ.update(saved)
