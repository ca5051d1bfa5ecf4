"""Different events of one order written at the same moment: the race optimistic concurrency is for.

Each event of an order is mapped by its own execution environment (a copy of the real status_mapper
handler) on its own thread, against moto's DynamoDB, which checks every ConditionExpression and,
with atomic_aws_calls(), applies each call atomically as DynamoDB does. Every thread reads the order
before any of them writes (a barrier after the first read), so all but one write against a stale
version every time: the race is certain, not left to the scheduler.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from infra.demo.traffic import synthetic_mall_events
from infra.local.inprocess import Context, client
from orderhub.lifecycle.machine import hub_order_id
from orderhub.models.envelope import IntakeMessage
from orderhub.store.orders import ConflictError, DynamoOrderStore
from reliability.checker import TALLIES, Tally
from reliability.concurrency import atomic_aws_calls
from reliability.test_nothing_lost import absent_functions, check_everything, post_until_stored

ORDERS, EVENTS = 60, 246  # the first 60 synthetic orders have 246 events (4 each, 5 for every tenth)


class ReadThenRace:
    """DynamoOrderStore instrumented for the test: a thread given a barrier waits at it right after its
    first read of the order, so every writer of the order holds the same version; conflicts are counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.conflicts = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        read, write = DynamoOrderStore.get_order, DynamoOrderStore.put_order
        race = self

        def get_order(store: DynamoOrderStore, order_id: str) -> Any:
            order = read(store, order_id)
            barrier = getattr(race._local, "barrier", None)
            if barrier is not None:
                race._local.barrier = None
                barrier.wait()
            return order

        def put_order(store: DynamoOrderStore, order: Any, expected_version: int) -> None:
            try:
                write(store, order, expected_version)
            except ConflictError:
                with race._lock:
                    race.conflicts += 1
                raise

        monkeypatch.setattr(DynamoOrderStore, "get_order", get_order)
        monkeypatch.setattr(DynamoOrderStore, "put_order", put_order)

    def map_at_once(self, envs: list, records: list[dict]) -> list[dict]:
        """Each record to its own environment on its own thread; all read, then all write."""
        barrier = threading.Barrier(len(records))

        def one(env: Any, record: dict) -> dict:
            self._local.barrier = barrier
            try:
                with env.lock:
                    reply = env.module.lambda_handler(json.loads(json.dumps({"Records": [record]})),
                                                      Context("status_mapper"))
            finally:
                if self._local.barrier is not None:  # never reached the read: do not leave the others waiting
                    self._local.barrier = None
                    barrier.abort()
            return reply

        with ThreadPoolExecutor(max_workers=len(records)) as pool:
            return list(pool.map(one, envs, records))


def test_different_events_of_one_order_written_at_once_are_all_applied(world, monkeypatch):
    service = world.service(exclude=absent_functions(world))
    sqs, intake = client("sqs"), world.res.queue_urls["intake"]
    sent = synthetic_mall_events(EVENTS, seed=33)
    # Given every event of 60 orders accepted by the webhook (so queued for the mapper), none mapped yet
    for event in sent:
        post_until_stored(world, service, event)
    queued = []
    while batch := sqs.receive_message(QueueUrl=intake, MaxNumberOfMessages=10, VisibilityTimeout=3600,
                                       MessageSystemAttributeNames=["All"]).get("Messages", []):
        queued += batch
    by_order: dict[str, list[dict]] = {}
    intake_poller = next(p for p in service.pollers if getattr(p, "function", "") == "status_mapper")
    for message in queued:
        (event,) = IntakeMessage.model_validate_json(message["Body"]).events or ()
        by_order.setdefault(event.channel_order_id or "", []).append(message)
    assert len(queued) == len(sent) and len(by_order) == ORDERS
    # When, order by order, all its events are mapped at the same moment by as many environments
    widest = max(len(messages) for messages in by_order.values())
    service.environments("status_mapper", widest)
    envs = service._envs["status_mapper"]
    race = ReadThenRace(monkeypatch)
    retried = 0
    with atomic_aws_calls():
        for messages in by_order.values():
            replies = race.map_at_once(envs, [intake_poller._record(m) for m in messages])
            for message, reply in zip(messages, replies, strict=True):
                if reply.get("batchItemFailures"):  # SQS hands it out again after its visibility timeout
                    retried += 1
                    sqs.change_message_visibility(QueueUrl=intake, ReceiptHandle=message["ReceiptHandle"],
                                                  VisibilityTimeout=0)
                else:
                    sqs.delete_message(QueueUrl=intake, ReceiptHandle=message["ReceiptHandle"])
        monkeypatch.undo()
        service.settle(world.clock)
    # Then every event counts: each order is what its events give, one version per event, each
    # change published and delivered once to every subscriber that wants it
    tally = Tally(f"{len(sent)} events of {ORDERS} orders written at once")
    state = check_everything(world, tally, sent)
    versions = Counter(int(item["version"]["N"]) for item in state.orders.values())
    tally.notes.update({"version conflicts": race.conflicts, "records retried": retried,
                        "orders by version": dict(sorted(versions.items()))})
    TALLIES.append(tally)
    assert tally.anomalies == (0, 0, 0, 0), tally
    assert tally.redelivered == 0, tally
    for order_no, messages in by_order.items():
        assert int(state.orders[hub_order_id("mall", order_no)]["version"]["N"]) == len(messages), order_no
    # And the race was real: every order had writers holding a stale version
    assert race.conflicts >= sum(len(m) - 1 for m in by_order.values())
