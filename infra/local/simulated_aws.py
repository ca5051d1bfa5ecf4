"""AWS in this process, for the in-process hub: a virtual clock for moto, faults injected at the botocore
layer, moto's hot paths made cheap, and DynamoDB's atomic conditional writes for concurrent writers.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.endpoint
import botocore.handlers
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

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
