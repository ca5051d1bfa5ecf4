"""Concurrent execution environments for the reliability scenarios, on moto made linearizable.

DynamoDB and SQS apply each API call atomically; moto runs a call as plain Python, so two
threads can interleave inside one (a condition checked by both before either writes, a message
list changed while another call walks it). While `atomic_aws_calls()` is active every call to
moto's DynamoDB and SQS backends runs alone, as AWS's would: the hub's threads still race between
calls (a read, then a conditional write), which is the race optimistic concurrency is for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from infra.local.inprocess import LambdaService, client
from infra.local.pollers import SqsPoller

_DYNAMODB_CALLS = ("put_item", "update_item", "delete_item", "get_item", "query", "scan", "batch_get_item",
                   "batch_write_item", "transact_write_items", "transact_get_items")
_SQS_CALLS = ("send_message", "send_message_batch", "receive_message", "delete_message", "delete_message_batch",
              "change_message_visibility", "change_message_visibility_batch", "get_queue_attributes", "purge_queue")


@contextmanager
def atomic_aws_calls() -> Iterator[None]:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.sqs.models import SQSBackend

    lock = threading.RLock()
    originals = [(cls, name, cls.__dict__[name]) for cls, names in ((DynamoDBBackend, _DYNAMODB_CALLS),
                                                                   (SQSBackend, _SQS_CALLS))
                 for name in names if name in cls.__dict__]

    def atomic(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)
        return call

    for cls, name, original in originals:
        setattr(cls, name, atomic(original))
    try:
        yield
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)


class ScaledOut:
    """`workers` execution environments of an SQS-triggered function, each with its own poller, pulling
    from the queue at once as Lambda scales out; `drain()` returns when none finds work."""

    def __init__(self, service: LambdaService, function: str, workers: int) -> None:
        service.environments(function, workers)
        sqs = client("sqs")  # boto3 clients are thread-safe; one is enough (and each costs ~50 ms to make)
        self.pollers = [SqsPoller(p.function, p.trigger, p.queue_url, p.queue_arn, p.region, sqs, service.invoke,
                                  batching_window_s=0.0, visibility_timeout_s=p.visibility_timeout_s)
                        for p in service.pollers if isinstance(p, SqsPoller) and p.function == function
                        for _ in range(workers)]
        self._pool = ThreadPoolExecutor(max_workers=len(self.pollers), thread_name_prefix=function)

    def drain(self) -> int:
        return sum(self._pool.map(_until_empty, self.pollers))

    def close(self) -> None:
        self._pool.shutdown()


def _until_empty(poller: SqsPoller) -> int:
    batches = 0
    while poller.poll_once():
        batches += 1
    return batches
