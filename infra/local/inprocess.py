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
- (Virtual time, faults and moto's fast paths are infra/local/simulated_aws.py.)
- Each function runs in one execution environment (calls are serialised, as one Lambda
  environment runs one invocation at a time); `environments(fn, n)` makes n independent copies
  of a handler module for scenarios that need real concurrency.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from infra.local.pollers import SqsPoller, StreamPoller
from infra.local.resources import Provisioned, function_environment, provision
from infra.local.simulated_aws import Faults, VirtualClock, moto_fast_paths
from infra.topology import SqsTrigger, Topology

REGION = "ap-southeast-1"
ACCOUNT = "123456789012"
REPO = Path(__file__).resolve().parents[2]


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


_FLUSH_LOCK = threading.Lock()


def _serialise_metric_flushes() -> None:
    """Environments copy a handler module, not `orderhub.observability`: every copy shares its one Powertools
    `Metrics`, which Lambda never runs from two threads. Its flush checks the metric set, then serialises
    and clears it; a flush on another thread in between clears the set under it ("Must contain at least one
    metric"). Flushes take turns here (once per process: in Lambda each environment has its own)."""
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

    flush = AmazonCloudWatchEMFProvider.flush_metrics
    if getattr(flush, "serialised", False):
        return

    def serialised(self: Any, raise_on_empty_metrics: bool = False) -> None:
        with _FLUSH_LOCK:
            flush(self, raise_on_empty_metrics)

    serialised.serialised = True  # type: ignore[attr-defined]
    AmazonCloudWatchEMFProvider.flush_metrics = serialised  # type: ignore[method-assign]


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
        _serialise_metric_flushes()
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
        from infra.cli.dlq import redrive

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


# ------------------------------------------------------------------------------------ the whole hub


@dataclass
class InProcessHub:
    """moto provisioned from the topology, the downstream and robot stand-ins, AWS's clock virtual,
    the fault injector installed (rate 0 until raised)."""

    config: Any
    topology: Topology
    res: Provisioned
    receiver: Any  # infra.standins.downstream.DownstreamReceiver, for the webhook subscribers
    inboxes: dict[str, Any]  # subscriber -> infra.standins.downstream.Inbox
    paths: dict[str, str]
    clock: VirtualClock
    faults: Faults
    robots: Any  # infra.standins.robots.RobotServer, on the virtual clock

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

    from infra.standins.downstream import by_subscriber, receiver_for
    from infra.standins.robots import robots_for
    from infra.topology import build_topology

    saved = dict(os.environ)
    os.environ.update({"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    clock, faults = VirtualClock(), Faults()
    receiver, config, paths = receiver_for(config)
    robots, config = robots_for(config, clock=lambda: clock.now().timestamp())
    topology = build_topology(config.topology_subscribers(), config.business_timezone, config.provider_confirmed())
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
