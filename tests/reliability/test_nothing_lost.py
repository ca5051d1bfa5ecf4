"""Nothing lost, nothing applied twice: poison records, outages, storms of duplicates, failing AWS calls, crashes.

Each scenario drives the real handlers as Lambda does (infra/local/inprocess.py), then the
checker compares what was sent with what the hub holds and what subscribers received; the
counts are printed at the end of the run.
"""

from __future__ import annotations

import base64
import os
import random
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from infra.cli.dlq import peek
from infra.demo.traffic import encode, mall_headers, mall_secret, synthetic_mall_events
from infra.local.inprocess import REPO, LambdaService, client
from orderhub.lifecycle.machine import hub_order_id
from orderhub.store.orders import entry_from_item
from reliability.checker import (
    TALLIES,
    HubState,
    Tally,
    check_deliveries,
    check_mall_history,
    matches,
    outbox_events,
)
from reliability.concurrency import ScaledOut, atomic_aws_calls

MAX_CHANNEL_RETRIES = 20
EVENTS_UNDER_FAULTS = int(os.environ.get("ORDERHUB_RELIABILITY_EVENTS", "10000"))


def webhook_event(body: bytes, headers: dict[str, str], channel: str = "mall") -> dict[str, Any]:
    return {"version": "2.0", "routeKey": "POST /webhooks/{channel}", "rawPath": f"/webhooks/{channel}",
            "rawQueryString": "", "headers": {k.lower(): v for k, v in headers.items()},
            "pathParameters": {"channel": channel}, "isBase64Encoded": True, "body": base64.b64encode(body).decode(),
            "requestContext": {"requestId": uuid.uuid4().hex, "http": {"method": "POST", "sourceIp": "203.0.113.7",
                                                                       "path": f"/webhooks/{channel}"}}}


def post_until_stored(world, service: LambdaService, event: dict) -> int:
    """The shop's side: send, and send again on anything but 2xx (as shops do). Returns the tries."""
    body = encode(event)
    for attempt in range(1, MAX_CHANNEL_RETRIES + 1):
        try:
            reply = service.invoke("webhook_ingest", webhook_event(body, mall_headers(mall_secret(world.config), body)))
        except Exception:  # noqa: S112 - the function failed: API Gateway answers 5xx, the shop sends again
            continue
        if 200 <= reply["statusCode"] < 300:
            return attempt
        assert reply["statusCode"] >= 500, reply  # a 4xx would be a bug here: every event is valid
    raise AssertionError(f"{event['event_id']} not stored after {MAX_CHANNEL_RETRIES} tries")


def absent_functions(world) -> tuple[str, ...]:
    return tuple(f.name for f in world.topology.functions if not (REPO / "functions" / f.name / "handler.py").exists())


def webhook_subscribers(world) -> dict[str, dict]:
    return {s.name: s.pattern for s in world.config.subscribers if s.kind == "webhook"}


def scheduled(world, minutes: float = 0) -> dict:
    """The event EventBridge Scheduler gives a scheduled function, at AWS's (virtual) time + minutes."""
    at = world.clock.now().timestamp() + 60 * minutes
    return {"schedule": "test", "scheduled_time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def ops_messages(world) -> list:
    """Messages the robots of the default alert route accepted."""
    route = world.config.alerts.routes[world.config.alerts.default_route]
    return [m for robot in route.robots for m in world.robots.messages(robot)]


def check_everything(world, tally: Tally, sent: list[dict]) -> HubState:
    state = check_mall_history(tally, sent, client("dynamodb"), world.res.tables)
    outbox = outbox_events(client("dynamodbstreams"), world.res.stream_arns["orders"])
    check_deliveries(tally, state, outbox, webhook_subscribers(world), world.inboxes)
    return state


def test_a_poison_record_alone_is_retried_and_parked_while_its_batch_commits(world):
    service = world.service(exclude=absent_functions(world))
    sqs = client("sqs")
    intake = world.res.queue_urls["intake"]
    # Given a batch of ten intake messages: nine good events of nine orders, and one the mapper cannot read
    events = [e for e in synthetic_mall_events(45) if e["event_type"] == "order.created"][:9]
    for event in events:
        assert post_until_stored(world, service, event) == 1
    sqs.send_message(QueueUrl=intake, MessageBody='{"channel": "mall", "body": "truncated by a bad produ')
    # When the mapper's event source runs until the queue is empty, AWS's clock moving on
    service.settle(world.clock, step_s=60, until=lambda: not service.backlog()["intake"])
    # Then the nine are applied once, the poison alone went round maxReceiveCount times and is parked
    tally = Tally("poison record in a batch of 10")
    check_mall_history(tally, events, client("dynamodb"), world.res.tables)
    handed = Counter(service.records_seen["status_mapper"].values())
    parked = peek(sqs, world.res.queue_urls["intake-dlq"], 10)
    max_receives = world.topology.queue("intake").max_receive_count
    tally.notes.update({"mapper batches": service.invocations["status_mapper"],
                        "times each record was handed over": dict(handed), "parked": len(parked)})
    TALLIES.append(tally)
    assert tally.anomalies == (0, 0, 0, 0), tally
    assert handed == Counter({1: 9, max_receives: 1})
    assert len(parked) == 1 and parked[0]["Body"].startswith('{"channel": "mall", "body": "truncated')
    assert int(parked[0]["Attributes"]["ApproximateReceiveCount"]) >= max_receives
    # And the people on duty hear of it once, however often the health check looks in the window
    for minutes in (0, 1, 2):
        service.invoke("hub_health", scheduled(world, minutes))
        service.drain()
    told = [m for m in ops_messages(world) if "intake-dlq" in m.content]
    tally.notes["alerts"] = len(told)
    assert len(told) == 1, [m.content for m in told]


def test_thousands_of_events_with_a_fifth_of_aws_calls_failing_lose_nothing_and_apply_nothing_twice(
        one_subscriber_world):
    world, count, rate = one_subscriber_world, EVENTS_UNDER_FAULTS, 0.2
    service = world.service(exclude=absent_functions(world))
    visibility = max(q.visibility_timeout_s for q in world.topology.queues)
    # Given 10,000 channel events (2,000+ orders), each window of 50 sent in a shuffled order (the same
    # order's events land in different batches), and 20 % of the hub's AWS calls failing in every way AWS fails
    sent = synthetic_mall_events(count, seed=4)
    shuffle = random.Random(4)
    for start in range(0, len(sent), 50):
        window = sent[start:start + 50]
        shuffle.shuffle(window)
        sent[start:start + 50] = window
    world.faults.rate = rate
    tries: Counter[int] = Counter()
    # When the shops send them (again on any 5xx) and four mapper environments work through them at once,
    # as Lambda scales out, failed records coming back after their visibility timeout
    mappers = ScaledOut(service, "status_mapper", 4)
    with atomic_aws_calls():
        for start in range(0, len(sent), 50):
            for event in sent[start:start + 50]:
                tries[post_until_stored(world, service, event)] += 1
            mappers.drain()
            service.drain()
            if start % 200 == 150:  # records that failed come back, as their visibility timeout ends
                world.clock.advance(visibility)
                mappers.drain()
                service.drain()
        # and an operator redrives what was parked after maxReceiveCount failures, until nothing is parked
        parked = redrive_until_nothing_is_parked(world, service, visibility)
    mappers.close()
    world.faults.rate = 0
    # Then every event is in its order's log, every order is what its events give, every change applied
    # once, and the subscriber has each change once
    tally = Tally(f"{count:,} events, {rate:.0%} of AWS calls failing")
    state = check_everything(world, tally, sent)
    tally.notes.update({"faults injected": dict(world.faults.injected),
                        "hub AWS calls": sum(world.faults.calls.values()),
                        "shop resends": sum((n - 1) * k for n, k in tries.items()),
                        "parked and redriven": dict(parked)})
    TALLIES.append(tally)
    assert tally.anomalies == (0, 0, 0, 0), tally
    assert len(state.orders) == len({hub_order_id("mall", e["order"]["order_no"]) for e in sent})
    assert sum(world.faults.injected.values()) > 0.15 * sum(world.faults.calls.values())
    assert all(world.faults.injected[kind] for kind in ("throttled", "server_error", "timeout_before", "timeout_after"))
    assert not any(service.backlog(include_dead_letters=True).values()), "everything settled"


def redrive_until_nothing_is_parked(world, service: LambdaService, visibility: float,
                                    max_rounds: int = 100) -> Counter[str]:
    """Settle, redrive every parked message, again, until no queue and no DLQ holds anything.

    Faults go on meanwhile, so a redriven record can be parked again: the number of rounds is not
    known in advance (each round parks a fraction of the one before), only that it ends. A parked
    message still hidden by a receive counts too: AWS's clock moves on until it can be moved.
    """
    parked: Counter[str] = Counter()
    for _ in range(max_rounds):
        service.settle(world.clock, step_s=visibility)
        if not any(service.backlog(include_dead_letters=True).values()):
            return parked
        moved = service.redrive_dead_letters()
        parked.update(moved)
        if not any(moved.values()):
            world.clock.advance(visibility)
    raise AssertionError(f"still parked after {max_rounds} redrives: {service.backlog(include_dead_letters=True)}")


def test_the_same_event_delivered_a_thousand_times_at_once_changes_the_order_once(world):
    service = world.service(exclude=absent_functions(world))
    created, paid = synthetic_mall_events(2, seed=9)
    post_until_stored(world, service, created)
    service.settle(world.clock)
    order_id = hub_order_id("mall", paid["order"]["order_no"])
    # Given the shop sends the same "paid" event 1,000 times at once, and four mapper environments run concurrently
    service.environments("webhook_ingest", 8)
    mappers = ScaledOut(service, "status_mapper", 4)
    with atomic_aws_calls(), ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: post_until_stored(world, service, paid), range(1000)))
        mappers.drain()
    mappers.close()
    service.settle(world.clock)
    log_after_the_storm = order_log(world, order_id)
    # and, later, once more (a redelivery after the change was made)
    post_until_stored(world, service, paid)
    service.settle(world.clock)
    # Then one order change, one domain event, one delivery per subscriber that wants it
    tally = Tally("1,000 concurrent copies of one event")
    state = check_everything(world, tally, [created, paid])
    outbox = outbox_events(client("dynamodbstreams"), world.res.stream_arns["orders"])
    after_paid = [e for e in outbox if e["detail"]["order_version"] == 2]
    tally.notes.update({"accepted": len(replies) + 1, "domain events of the change": len(after_paid)})
    TALLIES.append(tally)
    assert tally.anomalies == (0, 0, 0, 0) and tally.redelivered == 0, tally
    assert int(state.orders[order_id]["version"]["N"]) == 2
    assert [e["detail-type"] for e in after_paid] == ["OrderStatusChanged"]
    key = after_paid[0]["detail"]["event_id"]
    for name, pattern in webhook_subscribers(world).items():
        assert world.inboxes[name].keys[key] == (1 if matches(pattern, after_paid[0]) else 0), name
    # And the event log holds one entry per event, written once: the copies neither added one nor rewrote it
    assert [(e["event_key"]["S"].rsplit("#", 1)[1], e["outcome"]["S"]) for e in log_after_the_storm] == [
        (created["event_id"], "applied"), (paid["event_id"], "applied")]
    paid_entry = entry_from_item(log_after_the_storm[1])
    assert (paid_entry.status_before, paid_entry.status_after) == ("PENDING_PAYMENT", "PAID")
    assert order_log(world, order_id) == log_after_the_storm


def order_log(world, order_id: str) -> list[dict]:
    """The order's event-log items, as stored (every attribute), in key order."""
    return client("dynamodb").query(TableName=world.res.tables["order-events"], ConsistentRead=True,
                                    KeyConditionExpression="order_id = :id",
                                    ExpressionAttributeValues={":id": {"S": order_id}})["Items"]


def test_a_subscriber_down_for_half_an_hour_gets_every_event_once_it_is_back(outage_world):
    world = outage_world
    service = world.service(exclude=absent_functions(world))
    # Given the WMS answers 503 to everything for 30 minutes
    world.receiver.fail(world.paths["wms"], times=10**9)
    sent = synthetic_mall_events(40, seed=12)
    for event in sent:
        post_until_stored(world, service, event)
    # When the hub keeps working while AWS's clock runs through the outage, and the WMS comes back
    while world.clock.elapsed_s < 30 * 60:
        service.drain()
        world.clock.advance(30)
    refused = world.inboxes["wms"].failures_served
    world.receiver.fail(world.paths["wms"], times=0)
    service.settle(world.clock, step_s=60)
    # Then every event the WMS wants reached it, each Idempotency-Key once, nothing parked
    tally = Tally("subscriber down for 30 minutes")
    check_everything(world, tally, sent)
    alerts = [m for m in ops_messages(world) if "wms" in m.content and "failing" in m.content.lower()]
    tally.notes.update({"wms refusals during the outage": refused, "alerts about wms": len(alerts)})
    TALLIES.append(tally)
    assert tally.anomalies == (0, 0, 0, 0) and tally.redelivered == 0, tally
    assert refused > 0 and world.inboxes["wms"].delivered > 0
    assert not any(service.backlog(include_dead_letters=True).values())
    # And the people on duty were told, counted, not once per failed push
    assert 1 <= len(alerts) < refused


def test_a_crash_between_the_order_write_and_publishing_still_publishes(world):
    service = world.service(exclude=absent_functions(world))
    created, paid = synthetic_mall_events(2, seed=21)
    publisher = service._environment("event_publisher").module
    real_bus = publisher._bus
    crashes = Counter()

    class CrashingBus:
        """The environment dies mid-publish: first before PutEvents, then right after it succeeded."""

        def publish(self, entries):
            if crashes["before"] == 0:
                crashes["before"] += 1
                raise RuntimeError("execution environment lost before PutEvents")
            real_bus().publish(entries)
            if crashes["after"] == 0:
                crashes["after"] += 1
                raise RuntimeError("execution environment lost after PutEvents, before the checkpoint")

    publisher._bus = CrashingBus
    # Given the order is written (the outbox record is on the stream) and the publisher crashes twice
    for event in (created, paid):
        post_until_stored(world, service, event)
    service.settle(world.clock)
    publisher._bus = real_bus
    # Then every change still reached every subscriber; the one published twice came with the same key
    tally = Tally("crash between order write and publish")
    check_everything(world, tally, [created, paid])
    tally.notes["crashes"] = dict(crashes)
    TALLIES.append(tally)
    assert crashes == Counter({"before": 1, "after": 1})
    assert tally.anomalies == (0, 0, 0, 0), tally
