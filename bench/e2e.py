"""Local end to end: signed mall webhooks over real HTTP through the LocalRuntime, against a FLOOR.

    python -m bench.e2e [--events 2000] [--threads 4]

moto is the bottleneck (one process, one GIL, SQS receive scans the whole queue): 2,000 sends take
~10 min end to end here and the floor as long again; `bench.run_all` uses 300 unless --full.

The runtime (infra.local.runtime.LocalRuntime: moto server, HTTP API, pollers, one worker process
per function) runs in a child process (bench._e2e_child); this process sends, receives the
subscriber pushes (infra.standins.downstream's receiver, on a free port, the config re-pointed at it) and
checks the result in the runtime's DynamoDB over boto3.

Figures:
- events/s end to end: sends (resends included) / (first send -> runtime idle);
- lost: distinct events whose event-log entry is missing (plus orders missing);
- duplicates applied: order versions beyond the number of log entries that changed the order
  (a resend applied twice would add one), and duplicate Idempotency-Keys at the subscribers;
- deliveries per subscriber vs the domain events the log implies for its pattern.

REPLICA, same run, same moto server (the runtime quiesced): only the moto calls the flow needs,
made directly with boto3 by the same number of sender threads and one consumer per poller (as the
runtime polls, with its idle-poll backoff), on tables/queues/rules of the same shape: per send
SendMessage; per 10 ReceiveMessage + DeleteMessageBatch; per event GetItem + conditional PutItem of
the real log item (+ conditional PutItem of the real order item when the flow wrote it, and of the
waybill links it wrote); stream GetRecords; PutEvents with the real domain-event details (moto
routes them to the subscriber queues and, by the to-sla rule, to sla-events); per subscriber queue
ReceiveMessage + DeleteMessageBatch per 10; on sla-events, per batch the watermark GetItem and per
event the BatchWriteItem of the timers it arms (worked out beforehand by replaying the sends
through the hub's domain code and exception rules in memory). The replica shares the runtime's
waits, so it is not a lower bound: it is shown for information.
FLOOR (a lower bound): the CPU seconds moto's process spends serving the replica's calls, less
its empty polls (each costed by timing EMPTY_POLL_SAMPLE empty receives afterwards). moto is one
process under one GIL, so no schedule of the calls the flow needs can take less wall time on it.
GOAL: e2e time <= 1.5 x floor.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bench import REPO
from bench._support import Figure, dump_json, hub_config, print_figures, realistic_stream

GOAL_RATIO = 1.5
IDLE_TIMEOUT_S = 900
IDLE_BACKOFF_S = (0.05, 0.1, 0.2)  # the runtime pollers' waits after successive empty polls
EMPTY_POLL_SAMPLE = 200  # empty receives timed to take the replica's empty polls out of moto's CPU


# ------------------------------------------------------------------------------------ runtime child


class RuntimeProcess:
    def __init__(self, config) -> None:
        parent, child = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "shared"), str(REPO)])}
        for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            env.pop(key, None)
        self._devnull = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench._e2e_child", str(child.fileno()), config.model_dump_json()],
            cwd=str(REPO), env=env, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
            stdout=self._devnull, stderr=self._devnull)
        child.close()
        self.conn = Connection(parent.detach())
        kind, self.info = self._recv(180)
        if kind != "ready":
            raise RuntimeError(f"local runtime did not start: {self.info}")

    def _recv(self, timeout: float) -> tuple[str, Any]:
        if not self.conn.poll(timeout):
            raise TimeoutError("no answer from the local runtime process")
        return self.conn.recv()

    def wait_idle(self, timeout: float) -> tuple[str, dict]:
        self.conn.send(("idle", timeout))
        return self._recv(timeout + 30)

    def quiesce(self) -> None:
        self.conn.send(("quiesce", None))
        kind, detail = self._recv(120)
        if kind != "quiet":
            raise RuntimeError(f"could not quiesce the runtime: {detail}")

    def cpu_s(self) -> float:
        """CPU seconds the runtime's process has used (all its threads: moto, once quiesced)."""
        self.conn.send(("cpu", None))
        kind, seconds = self._recv(60)
        if kind != "cpu":
            raise RuntimeError(f"unexpected answer from the runtime: {kind}")
        return float(seconds)

    def stop(self) -> None:
        try:
            self.conn.send(("stop", None))
            self._recv(60)
        except (OSError, EOFError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._devnull.close()


def _clients(info: dict) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=info["region"], aws_access_key_id="testing",
                                    aws_secret_access_key="testing")  # noqa: S106 - moto
    cfg = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32)
    return {s: session.client(s, endpoint_url=info["endpoint_url"], config=cfg)
            for s in ("dynamodb", "dynamodbstreams", "sqs", "events")}


# ------------------------------------------------------------------------------------ sending


def send_all(api_url: str, secret: str, sends: list, threads: int) -> tuple[float, float, Counter]:
    """POST every send (in stream order, `threads` at a time). (first send, last reply, statuses)."""
    from infra.demo.traffic import mall_headers

    work: queue.Queue = queue.Queue()
    for s in sends:
        work.put(s)
    statuses: Counter = Counter()
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                s = work.get_nowait()
            except queue.Empty:
                return
            request = urllib.request.Request(f"{api_url}/webhooks/mall", data=s.body, method="POST",  # noqa: S310
                                             headers=mall_headers(secret, s.body))
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - http to loopback
                    status = reply.status
            except urllib.error.HTTPError as err:
                status = err.code
            except OSError as err:
                status = f"error {type(err).__name__}"
            with lock:
                statuses[status] += 1

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    first = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return first, time.perf_counter(), statuses


# ------------------------------------------------------------------------------------ checking


def scan(ddb: Any, table: str) -> list[dict]:
    items: list[dict] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


def _statuses(log_item: dict) -> tuple[str | None, str]:
    """(status before, status after) of a stored log entry (`e`: the JSON list store/orders.py writes)."""
    described = json.loads(log_item["e"]["S"])
    return described[4], described[5]


def implied_domain_events(log_items: list[dict]) -> list[tuple[str, str, str | None]]:
    """(detail type, status, previous status) of the domain events the event log implies."""
    out: list[tuple[str, str, str | None]] = []
    for item in log_items:
        outcome = item["outcome"]["S"]
        if outcome not in ("applied", "status_held"):
            continue
        before, after = _statuses(item)
        if before is None:
            out += [("OrderCreated", after, None), ("OrderStatusChanged", after, None)]
        elif before != after:
            out.append(("OrderStatusChanged", after, before))
        else:
            out.append(("OrderUpdated", after, before))
    return out


def expected_deliveries(config, implied: list[tuple[str, str, str | None]]) -> Counter:
    from bench.billing import matches as _matches

    expected: Counter = Counter()
    for detail_type, status, _ in implied:
        event = {"source": "orderhub.orders", "detail-type": detail_type, "detail": {"status": status}}
        for sub in config.subscribers:
            if _matches(sub.pattern, event):
                expected[sub.name] += 1
    return expected


def check(clients: dict, info: dict, sends: list) -> dict[str, Any]:
    from orderhub.clock import utc_iso
    from orderhub.lifecycle.machine import hub_order_id
    from orderhub.mapping import apply_to_store
    from orderhub.models.envelope import IntakeMessage
    from orderhub.store.orders import InMemoryOrderStore

    ddb = clients["dynamodb"]
    from orderhub.store.orders import WAYBILL_PREFIX

    # The event-log table also holds the waybill -> order links; they are not log entries.
    log_table = scan(ddb, info["tables"]["order-events"])
    log_items = [i for i in log_table if not i["order_id"]["S"].startswith(WAYBILL_PREFIX)]
    links: dict[str, list[dict]] = defaultdict(list)
    for i in log_table:
        if i["order_id"]["S"].startswith(WAYBILL_PREFIX):
            links[i["linked_order"]["S"]].append(i)
    order_items = scan(ddb, info["tables"]["orders"])
    present = {(i["order_id"]["S"], i["event_key"]["S"]) for i in log_items}
    unique = {s.event["event_id"]: s.event for s in sends}

    from datetime import datetime

    expected_keys = {}
    for ev in unique.values():
        key = (hub_order_id("mall", ev["order"]["order_no"]),
               f"{utc_iso(datetime.fromisoformat(ev['event_time']))}#{ev['event_id']}")
        expected_keys[key] = ev
    lost = [k for k in expected_keys if k not in present]
    unexpected = [k for k in present if k not in expected_keys]

    changed_by_log: Counter = Counter()
    for item in log_items:
        if item["outcome"]["S"] in ("applied", "status_held"):
            changed_by_log[item["order_id"]["S"]] += 1
    orders = {i["order_id"]["S"]: i for i in order_items}
    expected_orders = {k[0] for k in expected_keys}
    extra_versions = sum(max(0, int(o["version"]["N"]) - changed_by_log[oid]) for oid, o in orders.items())

    # Convergence: the same distinct events through the same domain code in memory, in send order.
    from bench._support import FakeLambdaContext  # noqa: F401 - keeps the import graph obvious
    from orderhub.clock import FixedClock

    store, clock = InMemoryOrderStore(), FixedClock(datetime.now().astimezone())
    from orderhub.channels import get_channel

    channel = get_channel("mall")
    for s in sends:
        message = IntakeMessage.wrap("mall", "2026-01-01T00:00:00.000+00:00", "r", "ip", {}, s.body)
        for event in channel.parse(s.body):
            apply_to_store(event, message, store, clock)
    from orderhub.store.order_item import order_from_item

    mismatched = [oid for oid, order in store.orders.items()
                  if oid not in orders or order_from_item(orders[oid]).status != order.status]
    return {"log_items": log_items, "order_items": orders, "waybill_links": dict(links), "lost": lost,
            "unexpected": unexpected,
            "orders_missing": sorted(expected_orders - set(orders)), "extra_versions": extra_versions,
            "mismatched_status": mismatched, "unique": len(unique)}


# ------------------------------------------------------------------------------------ floor


class _Timed:
    """A boto3 client whose calls are counted and timed (wall), per operation."""

    def __init__(self, client: Any, stats: dict[str, list[float]], lock: threading.Lock) -> None:
        self._client, self._stats, self._lock = client, stats, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith(("get_paginator", "meta")):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                with self._lock:
                    entry = self._stats.setdefault(name, [0, 0.0])
                    entry[0] += 1
                    entry[1] += time.perf_counter() - t0
        return call


def floor(clients: dict, info: dict, config, sends: list, checked: dict, threads: int) -> dict[str, Any]:
    """The moto calls the flow needs, made directly, pipelined like the runtime runs them."""
    from bench.billing import matches as _matches
    from orderhub.bus.domain_events import events_for_change
    from orderhub.channels import get_channel
    from orderhub.clock import FixedClock, utc_iso
    from orderhub.exceptions.model import ExceptionRules, slot_of
    from orderhub.exceptions.rules import timers_for_change
    from orderhub.lifecycle.machine import hub_order_id
    from orderhub.mapping import apply_to_store
    from orderhub.models.envelope import IntakeMessage
    from orderhub.store.order_item import order_from_item
    from orderhub.store.orders import InMemoryOrderStore
    from orderhub.store.sla_timers import WATERMARK_KEY, WATERMARK_SLOT

    setup = clients
    stats: dict[str, list[float]] = {}
    stats_lock = threading.Lock()
    ddb, streams, sqs, events = (setup[s] for s in ("dynamodb", "dynamodbstreams", "sqs", "events"))
    tag = f"floor{int(time.time())}"
    # --- resources of the same shape as the hub's
    orders_t, log_t = f"{tag}-orders", f"{tag}-events"
    ddb.create_table(TableName=orders_t, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    from bench._support import topology

    log_spec = topology(config).table("order-events")
    log_request: dict[str, Any] = {
        "TableName": log_t, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "order_id", "KeyType": "HASH"},
                      {"AttributeName": "event_key", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(
            {"order_id", "event_key"} | {k for i in log_spec.indexes for k in (i.partition_key, i.sort_key) if k})]}
    if log_spec.indexes:  # the same indexes as the hub's table (moto maintains them on every write)
        log_request["GlobalSecondaryIndexes"] = [
            {"IndexName": i.name, "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": i.partition_key, "KeyType": "HASH"}]
             + ([{"AttributeName": i.sort_key, "KeyType": "RANGE"}] if i.sort_key else [])}
            for i in log_spec.indexes]
    ddb.create_table(**log_request)
    stream_arn = ddb.describe_table(TableName=orders_t)["Table"]["LatestStreamArn"]
    intake = sqs.create_queue(QueueName=f"{tag}-intake", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
    bus = f"{tag}-bus"
    events.create_event_bus(Name=bus)
    sub_queues = {}
    for sub in config.subscribers:
        url = sqs.create_queue(QueueName=f"{tag}-sub-{sub.name}", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=f"{tag}-to-{sub.name}", EventBusName=bus, EventPattern=json.dumps(sub.pattern),
                        State="ENABLED")
        events.put_targets(Rule=f"{tag}-to-{sub.name}", EventBusName=bus, Targets=[{"Id": sub.name, "Arn": arn}])
        sub_queues[sub.name] = url
    # The SLA watchdog hears every domain event (rule to-sla -> sla-events) and arms timers.
    spec = topology(config)
    sla_rule = next(r for r in spec.rules if r.target_queue == "sla-events")
    timers_t = f"{tag}-sla-timers"
    timer_spec = spec.table("sla-timers")
    ddb.create_table(TableName=timers_t, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": timer_spec.partition_key, "KeyType": "HASH"},
                                {"AttributeName": timer_spec.sort_key, "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                                           for a in (timer_spec.partition_key, timer_spec.sort_key)])
    sla_url = sqs.create_queue(QueueName=f"{tag}-sla-events", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
    sla_arn = sqs.get_queue_attributes(QueueUrl=sla_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"{tag}-{sla_rule.name}", EventBusName=bus, EventPattern=json.dumps(sla_rule.pattern),
                    State="ENABLED")
    events.put_targets(Rule=f"{tag}-{sla_rule.name}", EventBusName=bus, Targets=[{"Id": "sla", "Arn": sla_arn}])

    # --- what each send writes, taken from what the real flow wrote
    log_by_key = {(i["order_id"]["S"], i["event_key"]["S"]): i for i in checked["log_items"]}
    details: dict[str, dict] = {}
    for oid, item in checked["order_items"].items():
        order = order_from_item(item)
        entries = events_for_change(None, order)
        details[oid] = json.loads(entries[0].to_put_events_entry(bus)["Detail"])
    from datetime import datetime

    # Waybill links: written with the first applied event of the order that carries a waybill.
    links_due = dict(checked["waybill_links"])
    plan = []
    for s in sends:
        oid = hub_order_id("mall", s.event["order"]["order_no"])
        key = f"{utc_iso(datetime.fromisoformat(s.event['event_time']))}#{s.event['event_id']}"
        log_item = log_by_key.get((oid, key))
        links: list[dict] = []
        if log_item is not None and oid in links_due and log_item["outcome"]["S"] in ("applied", "status_held") \
                and b'"tracking_no"' in s.body:
            links = links_due.pop(oid)
        plan.append((oid, log_item, checked["order_items"].get(oid), links))
    # The timers each published domain event arms, worked out before the clock starts.
    # The timers each domain event arms, worked out before the clock starts: the sends replayed through
    # the hub's domain code in memory, each change's domain events as the publisher builds them, and
    # the timers the watchdog's rules arm for each (keyed by what the floor publishes).
    rules = ExceptionRules.model_validate_json(config.exceptions.model_dump_json())
    now = datetime.now().astimezone()
    timer_items: dict[tuple[str, str, str], list[dict]] = {}
    replay, channel = InMemoryOrderStore(), get_channel("mall")
    for s in sends:
        message = IntakeMessage.wrap("mall", "2026-01-01T00:00:00.000+00:00", "r", "ip", {}, s.body)
        for event in channel.parse(s.body):
            oid = hub_order_id("mall", event.channel_order_id)
            old = replay.get_order(oid)
            apply_to_store(event, message, replay, FixedClock(now))
            for entry in events_for_change(old, replay.get_order(oid)):
                timer_items.setdefault((oid, entry.detail_type, entry.detail.status.value), [
                    {"PutRequest": {"Item": {
                        "slot": {"S": utc_iso(max(slot_of(t.due), slot_of(now)))}, "timer_key": {"S": t.key},
                        "order_id": {"S": t.order_id}, "rule": {"S": t.rule.value}, "due_at": {"S": t.due_at},
                        "expires_at": {"N": str(int(now.timestamp()) + 86400 * 3)}}}}
                    for t in timers_for_change(entry.detail, rules)])
    bodies = [IntakeMessage.wrap("mall", "2026-01-01T00:00:00.000+00:00", str(i), "203.0.113.10", {}, s.body)
              .model_dump_json() for i, s in enumerate(sends)]

    state = {"mapped": 0, "order_writes": 0, "published_records": 0, "mapper_done": False,
             "publisher_done": False, "slept": 0.0, "empty_polls": 0}
    routed: Counter = Counter()
    consumed: Counter = Counter()
    errors: list[str] = []

    def guard(fn):
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - reported in the figures
                errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
                state["mapper_done"] = state["publisher_done"] = True
        return run

    def receive(url: str) -> list[dict]:
        return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   MessageSystemAttributeNames=["All"],
                                   MessageAttributeNames=["All"]).get("Messages", [])

    def delete(url: str, messages: list[dict]) -> None:
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for n, m in enumerate(messages)])

    versions: dict[str, int] = defaultdict(int)
    ddb, streams, sqs, events = (_Timed(c, stats, stats_lock) for c in (ddb, streams, sqs, events))

    def backoff(idle: int) -> int:
        wait = IDLE_BACKOFF_S[min(idle, len(IDLE_BACKOFF_S) - 1)]
        time.sleep(wait)
        with stats_lock:
            state["slept"] += wait
            state["empty_polls"] += 1  # each backoff follows one empty poll
        return idle + 1

    @guard
    def mapper() -> None:
        from botocore.exceptions import ClientError

        idle = 0
        while state["mapped"] < len(sends):
            messages = receive(intake)
            if not messages:
                idle = backoff(idle)
                continue
            idle = 0
            for m in messages:
                oid, log_item, order_item, links = plan[int(json.loads(m["Body"])["request_id"])]
                if log_item is None:
                    continue  # lost by the flow: nothing to replay
                ddb.get_item(TableName=orders_t, Key={"order_id": {"S": oid}}, ConsistentRead=True)
                try:
                    ddb.put_item(TableName=log_t, Item=log_item, ConditionExpression="attribute_not_exists(event_key)")
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        raise
                    continue  # a resend: the hub stops here too
                if log_item["outcome"]["S"] not in ("applied", "status_held") or order_item is None:
                    continue
                before, after = _statuses(log_item)
                route = "INSERT" if before is None else ("OrderStatusChanged" if before != after else "OrderUpdated")
                for link in links:  # first writer wins, before the order write (as the mapper does)
                    try:
                        ddb.put_item(TableName=log_t, Item=link, ConditionExpression="attribute_not_exists(event_key)")
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                            raise
                v = versions[oid]
                item = {**order_item, "version": {"N": str(v + 1)}, "floor_route": {"S": f"{route}|{after}"}}
                cond = ({"ConditionExpression": "attribute_not_exists(order_id)"} if v == 0 else
                        {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": {"N": str(v)}}})
                ddb.put_item(TableName=orders_t, Item=item, **cond)
                versions[oid] = v + 1
                state["order_writes"] += 1
            delete(intake, messages)
            state["mapped"] += len(messages)
        state["mapper_done"] = True

    @guard
    def publisher() -> None:
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        idle = 0
        while True:
            if state["mapper_done"] and state["published_records"] >= state["order_writes"]:
                break
            reply = streams.get_records(ShardIterator=iterator, Limit=100)
            records = reply.get("Records", [])
            if records:
                iterator = reply.get("NextShardIterator", iterator)
                idle = 0
            else:
                idle = backoff(idle)
                continue
            for r in records:
                new = r["dynamodb"]["NewImage"]
                route, status = new["floor_route"]["S"].split("|")
                oid = new["order_id"]["S"]
                kinds = [("OrderCreated", status), ("OrderStatusChanged", status)] if route == "INSERT" \
                    else [(route, status)]
                entries = []
                for detail_type, st in kinds:
                    detail = {**details[oid], "status": st}
                    entries.append({"Source": "orderhub.orders", "DetailType": detail_type,
                                    "Detail": json.dumps(detail), "EventBusName": bus})
                    for sub in config.subscribers:
                        if _matches(sub.pattern, {"source": "orderhub.orders", "detail-type": detail_type,
                                                  "detail": detail}):
                            routed[sub.name] += 1
                    routed["sla"] += 1  # to-sla matches every domain event
                events.put_events(Entries=entries)  # one call per record, as event_publisher does
                state["published_records"] += 1
        state["publisher_done"] = True

    def consumer(name: str, url: str, handle: Callable[[list[dict]], None] | None = None):
        @guard
        def consume() -> None:
            idle = 0
            while True:
                messages = receive(url)
                if messages:
                    if handle is not None:
                        handle(messages)
                    delete(url, messages)
                    consumed[name] += len(messages)
                    idle = 0
                    continue
                if state["publisher_done"] and consumed[name] >= routed[name]:
                    return
                idle = backoff(idle)
        consume.__name__ = f"consumer-{name}"
        return consume

    def arm_timers(messages: list[dict]) -> None:
        """The SLA watchdog's calls: per batch the watermark GetItem; per event with timers one BatchWriteItem."""
        ddb.get_item(TableName=timers_t, ConsistentRead=True,
                     Key={"slot": {"S": WATERMARK_SLOT}, "timer_key": {"S": WATERMARK_KEY}})
        for m in messages:
            event = json.loads(m["Body"])
            puts = timer_items.get((event["detail"]["order_id"], event["detail-type"], event["detail"]["status"]))
            if puts:
                ddb.batch_write_item(RequestItems={timers_t: puts})

    work: queue.Queue = queue.Queue()
    for body in bodies:
        work.put(body)

    def sender() -> None:
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            sqs.send_message(QueueUrl=intake, MessageBody=body,
                             MessageAttributes={"channel": {"DataType": "String", "StringValue": "mall"}})

    pipeline = [threading.Thread(target=guard(sender), daemon=True) for _ in range(threads)]
    pipeline += [threading.Thread(target=mapper, daemon=True), threading.Thread(target=publisher, daemon=True)]
    pipeline += [threading.Thread(target=consumer(n, u), daemon=True) for n, u in sub_queues.items()]
    pipeline.append(threading.Thread(target=consumer("sla", sla_url, arm_timers), daemon=True))
    started = time.perf_counter()
    for t in pipeline:
        t.start()
    for t in pipeline:
        t.join(IDLE_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "order_writes": state["order_writes"], "published": state["published_records"],
            "slept": state["slept"], "empty_polls": state["empty_polls"], "intake_url": intake,
            "routed": dict(routed), "consumed": dict(consumed), "errors": errors,
            "calls": {op: f"{n} x {total / n * 1000:.1f} ms" for op, (n, total) in
                      sorted(stats.items(), key=lambda kv: -kv[1][1])}}


# ------------------------------------------------------------------------------------ run


def run(events: int = 2000, threads: int = 4) -> list[Figure]:
    import logging

    from infra.demo.traffic import mall_secret
    from infra.standins.downstream import by_subscriber, receiver_for

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    receiver, config, paths = receiver_for(hub_config())
    sends = realistic_stream(events, seed=31)
    receiver.start()
    runtime = None
    try:
        t0 = time.perf_counter()
        runtime = RuntimeProcess(config)
        info = runtime.info
        print(f"  runtime up in {time.perf_counter() - t0:.1f} s (cold starts, ms: "
              f"{ {k: round(v) if isinstance(v, float) else v for k, v in info['warm_ms'].items()} })",
              file=sys.stderr)
        first, last_reply, statuses = send_all(info["api_url"], mall_secret(config), sends, threads)
        state, stats = runtime.wait_idle(IDLE_TIMEOUT_S)
        idle_at = time.perf_counter()
        e2e_s = idle_at - first
        print(f"  e2e: {len(sends)} sends in {last_reply - first:.1f} s, idle after {e2e_s:.1f} s ({state})",
              file=sys.stderr)
        clients = _clients(info)
        checked = check(clients, info, sends)
        inboxes = by_subscriber(receiver, paths)
        implied = implied_domain_events(checked["log_items"])
        expected = expected_deliveries(config, implied)
        runtime.quiesce()
        cpu0 = runtime.cpu_s()
        fl = floor(clients, info, config, sends, checked, threads)
        moto_all_s = runtime.cpu_s() - cpu0
        # The replica's empty polls are not work the flow needs: take out what moto spends on one.
        cpu0 = runtime.cpu_s()
        for _ in range(EMPTY_POLL_SAMPLE):
            clients["sqs"].receive_message(QueueUrl=fl["intake_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        per_empty_s = (runtime.cpu_s() - cpu0) / EMPTY_POLL_SAMPLE
        moto_s = moto_all_s - fl["empty_polls"] * per_empty_s
        print(f"  replica: {fl['seconds']:.1f} s, moto CPU {moto_s:.1f} s ({fl})", file=sys.stderr)
    finally:
        if runtime is not None:
            runtime.stop()
        receiver.stop()

    delivered = {name: inbox.delivered for name, inbox in inboxes.items()}
    dup_keys = {name: inbox.duplicates for name, inbox in inboxes.items()}
    lost_deliveries = sum(max(0, expected[n] - delivered.get(n, 0)) for n in expected)
    ok = statuses.get(200, 0)
    dup_sends = len(sends) - checked["unique"]
    ratio = e2e_s / moto_s if moto_s else None
    figures = [
        Figure("e2e", "end-to-end throughput (first send -> idle)", len(sends) / e2e_s, "events/s",
               anchor=len(sends) / fl["seconds"], anchor_unit="events/s", anchor_label="replica",
               note=f"{len(sends):,} sends ({dup_sends} resends) by {threads} client threads, HTTP {dict(statuses)};"
                    f" e2e {e2e_s:.1f} s, moto-only replica {fl['seconds']:.1f} s; runtime {state}; invocations "
                    f"{stats['invocations']}, errors {stats['errors']}, failed batches {stats['failed_batches']}"),
        Figure("e2e", "end-to-end time vs moto's CPU for the calls the flow needs (lower bound)", e2e_s, "s",
               anchor=moto_s, anchor_unit="s", goal=f"<= {GOAL_RATIO} x floor",
               passed=ratio is not None and ratio <= GOAL_RATIO, ratio=ratio,
               note=(f"MISS: the replica of the same calls, polled as the runtime polls (waits {IDLE_BACKOFF_S} s "
                     f"after an empty poll), takes {fl['seconds'] / moto_s:.2f}x the floor by itself; the runtime "
                     f"takes {e2e_s / fl['seconds']:.2f}x the replica. " if ratio is not None and ratio > GOAL_RATIO
                     else "")
                    + f"floor = the CPU seconds moto's process spent serving the replica's calls (below), "
                      f"{moto_all_s:.1f} s, less its {fl['empty_polls']:,} empty polls at {per_empty_s * 1e3:.2f} ms "
                      f"each: one process, one GIL, so no schedule of the calls the flow needs on this moto takes "
                      f"less wall time"),
        Figure("e2e", "end-to-end time vs moto-only replica (info: not a lower bound)", e2e_s, "s",
               anchor=fl["seconds"], anchor_unit="s", anchor_label="replica",
               ratio=e2e_s / fl["seconds"] if fl["seconds"] else None,
               note=f"replica: only the moto calls the flow needs, pipelined like the runtime, with the runtime's "
                    f"idle-poll backoff ({fl['slept']:.1f} s slept over its threads); {fl['order_writes']} order "
                    f"writes, {fl['published']} PutEvents calls, routed {fl['routed']}, consumed {fl['consumed']}, "
                    f"errors {fl['errors'] or 'none'}; calls (count x mean wall, concurrent): {fl['calls']}"),
        Figure("e2e", "lost events (log entry missing) + orders missing",
               len(checked["lost"]) + len(checked["orders_missing"]), "events", goal="0",
               passed=not checked["lost"] and not checked["orders_missing"] and ok == len(sends),
               note=f"{checked['unique']} distinct events; log entries not expected: {len(checked['unexpected'])};"
                    f" orders whose final status differs from the in-memory reference: "
                    f"{len(checked['mismatched_status'])}"),
        Figure("e2e", "duplicates applied (version bumps beyond the log)", checked["extra_versions"], "bumps",
               goal="0", passed=checked["extra_versions"] == 0),
        Figure("e2e", "subscriber pushes: duplicate Idempotency-Keys", sum(dup_keys.values()), "keys", goal="0",
               passed=sum(dup_keys.values()) == 0,
               note=f"delivered (distinct keys) {delivered}, duplicates {dup_keys}, expected from the log "
                    f"{dict(expected)}, missing {lost_deliveries}"),
    ]
    return figures


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--json", help="also write the figures here (bench.run_all)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    figures = run(args.events, args.threads)
    print_figures(f"bench.e2e: local end to end over HTTP, {args.events:,} sends (took "
                  f"{time.perf_counter() - t0:.0f} s)", figures)
    dump_json(args.json, "e2e", figures, [], time.perf_counter() - t0)
    return figures


if __name__ == "__main__":
    main()
