"""DynamoDB write units per status event and AWS list-price cost per million webhook events.

    python -m bench.cost [--events 4000]

Drives the real code over a realistic order mix (infra.demo.traffic.synthetic_mall_events interleaved
by event time, ~5 % resends) with recording fakes for every AWS client, then bills the calls:

ours    HTTP API -> webhook_ingest (SendMessage) -> intake queue -> status_mapper, batches of 10
        (DynamoOrderStore: GetItem, conditional PutItem of the log entry, conditional PutItem of the
        order) -> orders stream -> event_publisher (PutEvents of events_for_stream_record) ->
        EventBridge rules of config/local.toml's subscribers -> subscriber queues -> dispatcher;
        and the `to-sla` rule -> sla-events -> sla_watchdog arming SLA timers (BatchWriteItem).
ANCHOR  the same flow built the common way (bench.anchors): Powertools ingest -> queue -> mapper
        with Powertools idempotency (its real calls against the recording fake), GetItem, a
        two-item TransactWriteItems (order + event-log/outbox item) and PutEvents from the handler
        -> the same rules, queues, dispatcher and SLA watchdog.

Write units come from the sizes of the items actually written (orderhub.store.attributes):
1 WRU per started KB of the larger of the old and new item, failed conditional writes included;
2 per KB per item in a transaction; a GSI the topology declares (the stack projects ALL) bills the write
again for every item written with the index's keys.
Reads: 1 RRU per started 4 KB, strongly consistent (minimum 1, item or not).
GOALS: <= 2 write units per status event (the status path: orders and event log, idempotency and
transactions in the anchor; the SLA timers are shown apart); <= $3.50 per million webhook events
(everything, SLA watchdog and subscriber delivery included).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench._support import (
    ACCOUNT,
    REGION,
    FakeDynamo,
    FakeEvents,
    FakeLambdaContext,
    FakeSQS,
    Figure,
    Recorder,
    apigw_v2_event,
    apply_environment,
    dump_json,
    hub_config,
    hub_dynamo,
    install_config_stubs,
    message_attributes_for_lambda,
    physical,
    print_figures,
    realistic_stream,
    sqs_event,
    topology,
)

# us-east-1 on-demand list prices (USD)
PRICE = {
    "ddb_wru": 0.625e-6, "ddb_rru": 0.125e-6,
    "lambda_request": 0.20e-6, "lambda_gb_s": 0.0000133334,  # arm64
    "sqs_request": 0.40e-6, "eventbridge_event": 1.00e-6, "http_api_request": 1.00e-6, "kms_request": 3.00e-6,
    "logs_gb": 0.50,  # CloudWatch Logs ingestion (standard): shown for information, not in the total
}
GOAL_WU = 2.0
GOAL_USD_PER_M = 3.50

# Assumed AWS-side latencies (ms) that a Lambda spends waiting, per call. Lambda duration =
# measured CPU here x (1769 MB / memory) (Lambda's CPU share; this machine is not faster than a
# Lambda core, so this errs high) + these waits + 1 ms platform overhead, billed per ms.
LATENCY_MS = {"SendMessage": 8, "GetItem": 4, "PutItem": 6, "UpdateItem": 6, "TransactWriteItems": 12,
              "PutEvents": 15, "http_post": 50}
STREAM_BATCH = 10  # records per event_publisher invocation (configured max 100 with a 1 s window: traffic-dependent)
SQS_BATCH = 10  # messages per status_mapper / dispatcher invocation (full batches, as configured)
KMS_ENVIRONMENTS = 5  # warm Lambda environments per KMS-encrypted queue side, for the KMS estimate
KMS_REFERENCE_RATE = 20.0  # events/s at which the amortised KMS figure is given


def gsi_tables() -> dict[str, list[tuple[str, str | None]]]:
    """Physical table -> its GSIs' key attributes, from the topology (the CDK stack projects ALL: every
    write that carries an index's keys is copied into it and billed again)."""
    return {physical(t.name): [(i.partition_key, i.sort_key) for i in t.indexes]
            for t in topology().tables if t.indexes}


def _chunks64k(size: int) -> int:
    return max(1, math.ceil(size / 65536))


@dataclass
class Bill:
    """Counted requests and units of one flow, and the Lambda seconds behind them."""

    events: int = 0  # webhook events sent (resends included)
    http_api: int = 0
    lambda_invocations: Counter = field(default_factory=Counter)
    lambda_gb_s: defaultdict = field(default_factory=lambda: defaultdict(float))
    lambda_ms: defaultdict = field(default_factory=lambda: defaultdict(list))
    sqs_requests: Counter = field(default_factory=Counter)
    wru: Counter = field(default_factory=Counter)
    rru: Counter = field(default_factory=Counter)
    eventbridge_events: int = 0
    kms_requests: float = 0.0
    log_bytes: Counter = field(default_factory=Counter)

    def invoke(self, fn: str, memory_mb: int, cpu_s: float, calls: list, extra_wait_ms: float = 0) -> None:
        waits = sum(LATENCY_MS.get(c.op, 0) for c in calls) + extra_wait_ms
        ms = math.ceil(cpu_s * 1000 * 1769 / memory_mb + waits + 1)
        self.lambda_invocations[fn] += 1
        self.lambda_gb_s[fn] += memory_mb / 1024 * ms / 1000
        self.lambda_ms[fn].append(ms)

    def dollars(self) -> dict[str, float]:
        return {
            "API Gateway HTTP API": self.http_api * PRICE["http_api_request"],
            "Lambda requests": sum(self.lambda_invocations.values()) * PRICE["lambda_request"],
            "Lambda GB-s (arm64)": sum(self.lambda_gb_s.values()) * PRICE["lambda_gb_s"],
            "SQS requests": sum(self.sqs_requests.values()) * PRICE["sqs_request"],
            "DynamoDB writes": sum(self.wru.values()) * PRICE["ddb_wru"],
            "DynamoDB reads": sum(self.rru.values()) * PRICE["ddb_rru"],
            "EventBridge events": self.eventbridge_events * PRICE["eventbridge_event"],
            "KMS (amortised)": self.kms_requests * PRICE["kms_request"],
        }

    def fanout_per_million(self) -> dict[str, float]:
        """US$/M of delivering to each subscriber: its queue's SQS requests and its share of dispatcher time."""
        out: dict[str, float] = {}
        queues = {k.split()[1] for k in self.sqs_requests if "sub-" in k}
        total_sub = sum(v for k, v in self.sqs_requests.items() if "sub-" in k) or 1
        lam = (self.lambda_invocations["dispatcher"] * PRICE["lambda_request"] +
               self.lambda_gb_s["dispatcher"] * PRICE["lambda_gb_s"])
        for q in sorted(queues):
            reqs = sum(v for k, v in self.sqs_requests.items() if k.split()[1] == q)
            out[q] = (reqs * PRICE["sqs_request"] + lam * reqs / total_sub) / self.events * 1e6
        return out

    def per_million(self) -> dict[str, float]:
        return {k: v / self.events * 1e6 for k, v in self.dollars().items()}


def bill_dynamodb(bill: Bill, calls: list) -> None:
    """Write and read units from the recorded calls, by table and kind."""
    from orderhub.store.attributes import item_size_bytes

    indexes = gsi_tables()

    def wu(*items: dict | None) -> int:
        return max(1, math.ceil(max(item_size_bytes(i) if i else 0 for i in items) / 1024))

    for c in calls:
        if c.service != "dynamodb":
            continue
        table = c.table.removeprefix("orderhub-local-")
        if c.op == "GetItem":
            size = item_size_bytes(c.item) if c.item else 0
            bill.rru[f"GetItem {table}"] += max(1, math.ceil(size / 4096)) * (1 if c.consistent else 0.5)
        elif c.op in ("PutItem", "UpdateItem", "DeleteItem"):
            kind = f"{c.op} {table}" + ("" if c.ok else " (failed condition)")
            bill.wru[kind] += wu(c.item, c.old)
        elif c.op == "TransactPut":
            kind = f"TransactWriteItems put {table}" + ("" if c.ok else " (cancelled)")
            bill.wru[kind] += 2 * wu(c.item, c.old)
        if c.op in ("PutItem", "UpdateItem", "TransactPut") and c.ok:
            for keys in indexes.get(c.table, ()):
                if all(k in c.item for k in keys if k):  # projection ALL: the index entry is the whole item
                    bill.wru[f"GSI write {table}"] += wu(c.item)


def bill_sqs_batches(bill: Bill, queue: str, bodies: list[str], batch_size: int = SQS_BATCH) -> int:
    """ReceiveMessage + DeleteMessageBatch per batch; returns the number of batches."""
    batches = 0
    for i in range(0, len(bodies), batch_size):
        batch = bodies[i:i + batch_size]
        bill.sqs_requests[f"ReceiveMessage {queue}"] += _chunks64k(sum(len(b.encode()) for b in batch))
        bill.sqs_requests[f"DeleteMessageBatch {queue}"] += 1
        batches += 1
    return batches


def _matches(pattern: dict, event: dict) -> bool:
    """EventBridge pattern matching for the forms the subscriber patterns use (value lists, nesting)."""
    for key, want in pattern.items():
        have = event.get(key)
        if isinstance(want, dict):
            if not isinstance(have, dict) or not _matches(want, have):
                return False
        elif have not in want:
            return False
    return True


def bus_events(entries: list[dict]) -> list[dict]:
    """PutEvents entries -> the events EventBridge delivers to targets."""
    out = []
    for i, e in enumerate(entries):
        out.append({"version": "0", "id": f"eb-{i}", "detail-type": e["DetailType"], "source": e["Source"],
                    "account": ACCOUNT, "time": "2026-11-21T01:00:00Z", "region": REGION, "resources": [],
                    "detail": json.loads(e["Detail"])})
    return out


class _Capture:
    """fd 1 -> a temp file for the block: the log bytes a function writes to CloudWatch Logs."""

    def __enter__(self) -> _Capture:
        import sys

        sys.stdout.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(1)
        os.dup2(self._file.fileno(), 1)
        return self

    def __exit__(self, *exc: Any) -> None:
        import sys

        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)
        self.bytes = self._file.seek(0, os.SEEK_END)
        self._file.close()


def _timed(fn, *args) -> tuple[Any, float]:
    t0 = time.process_time()
    reply = fn(*args)
    return reply, time.process_time() - t0


def route_and_dispatch(bill: Bill, entries: list[dict], config, dispatcher, sub_memory: int) -> Counter:
    """EventBridge rules -> subscriber queues (SendMessage by EventBridge) -> dispatcher batches."""
    per_queue: dict[str, list[str]] = defaultdict(list)
    for event in bus_events(entries):
        for sub in config.subscribers:
            if _matches(sub.pattern, event):
                body = json.dumps(event)
                per_queue[f"sub-{sub.name}"].append(body)
                bill.sqs_requests[f"SendMessage sub-{sub.name} (EventBridge target)"] += _chunks64k(len(body))
    deliveries = Counter()
    ctx = FakeLambdaContext(physical("dispatcher"), sub_memory)
    with _Capture() as cap:
        for queue, bodies in per_queue.items():
            bill_sqs_batches(bill, queue, bodies)
            for i in range(0, len(bodies), SQS_BATCH):
                batch = bodies[i:i + SQS_BATCH]
                reply, cpu_s = _timed(dispatcher.lambda_handler, sqs_event(batch, queue), ctx)
                if reply.get("batchItemFailures"):
                    raise RuntimeError(f"dispatcher failed: {reply}")
                bill.invoke("dispatcher", sub_memory, cpu_s, [], extra_wait_ms=LATENCY_MS["http_post"] * len(batch))
                deliveries[queue] += len(batch)
    bill.log_bytes["dispatcher"] += cap.bytes
    return deliveries


def arm_sla_timers(bill: Bill, entries: list[dict], config, dynamo: FakeDynamo, rec: Recorder) -> int:
    """The `to-sla` rule -> sla-events (every domain event) -> sla_watchdog arming SLA timers (EXC-1)."""
    from orderhub.store.sla_timers import DynamoTimerStore

    apply_environment("sla_watchdog", config)
    watchdog = importlib.import_module("functions.sla_watchdog.handler")
    watchdog._timers = DynamoTimerStore(client=dynamo)
    bodies = [json.dumps(event) for event in bus_events(entries)]
    for body in bodies:
        bill.sqs_requests["SendMessage sla-events (EventBridge target)"] += _chunks64k(len(body))
    trigger = next(t for t in topology().function("sla_watchdog").triggers)
    bill_sqs_batches(bill, "sla-events", bodies, trigger.batch_size)
    ctx = FakeLambdaContext(physical("sla_watchdog"), _mem("sla_watchdog"))
    rec.clear()
    with _Capture() as cap:
        for i in range(0, len(bodies), trigger.batch_size):
            n0 = len(rec.calls)
            reply, cpu_s = _timed(watchdog.lambda_handler, sqs_event(bodies[i:i + trigger.batch_size], "sla-events"),
                                  ctx)
            if reply.get("batchItemFailures"):
                raise RuntimeError(f"sla_watchdog failed: {reply}")
            bill.invoke("sla_watchdog", _mem("sla_watchdog"), cpu_s, rec.calls[n0:])
    bill.log_bytes["sla_watchdog"] += cap.bytes
    bill_dynamodb(bill, rec.calls)
    rec.clear()
    return len(bodies)


def kms_estimate(bill: Bill, queues_with_traffic: int) -> None:
    """SQS SSE-KMS: GenerateDataKey by each producer environment and Decrypt by each consumer
    environment, once per data-key reuse period (300 s), per queue; DynamoDB caches its table key
    likewise. Given per event at KMS_REFERENCE_RATE events/s."""
    calls_per_300s = queues_with_traffic * 2 * KMS_ENVIRONMENTS + 2 * 2 * KMS_ENVIRONMENTS  # queues + 2 tables
    events_per_300s = KMS_REFERENCE_RATE * 300
    bill.kms_requests = calls_per_300s / events_per_300s * bill.events


@dataclass
class FlowResult:
    bill: Bill
    status_events: int
    unique_events: int
    deliveries: Counter
    notes: dict[str, Any] = field(default_factory=dict)


def _mem(name: str) -> int:
    return topology().function(name).memory_mb


def setup_dispatcher(config) -> Any:
    apply_environment("dispatcher", config)
    dispatcher = importlib.import_module("functions.dispatcher.handler")

    from orderhub.outbound_http import HttpReply

    class _Ok:
        """Every receiver answers at once: a webhook with 200, a robot with errcode 0."""

        def post(self, url: str, body: bytes, headers: dict, timeouts: Any) -> HttpReply:
            return HttpReply(200, b'{"errcode":0,"errmsg":"ok"}')

    dispatcher._transport = _Ok()
    return dispatcher


def _bill_ingest(bill, rec, handler, label: str, sends, secret: str) -> None:
    """HTTP API -> an ingest handler -> SendMessage, billed under `label` (ours and the anchor alike)."""
    from infra.demo.traffic import mall_headers

    ctx = FakeLambdaContext(physical("webhook_ingest"), _mem("webhook_ingest"))
    with _Capture() as cap:
        for s in sends:
            n0 = len(rec.calls)
            reply, cpu_s = _timed(handler, apigw_v2_event(s.body, mall_headers(secret, s.body)), ctx)
            if reply["statusCode"] != 200:
                raise RuntimeError(reply)
            bill.http_api += 1
            bill.invoke(label, _mem("webhook_ingest"), cpu_s, rec.calls[n0:])
    bill.log_bytes[label] += cap.bytes
    for c in rec.calls:
        bill.sqs_requests["SendMessage intake"] += _chunks64k(c.size)


def run_ours(config, sends: list, dispatcher) -> FlowResult:
    from infra.demo.traffic import mall_secret
    from orderhub.bus.publisher import EventBridgePublisher
    from orderhub.intake import IntakeQueue
    from orderhub.store.orders import DynamoOrderStore

    bill = Bill(events=len(sends))
    rec = Recorder()
    secret = mall_secret(config)

    # 1. HTTP API -> webhook_ingest -> SendMessage
    env = apply_environment("webhook_ingest", config)
    ingest = importlib.import_module("functions.webhook_ingest.handler")
    sqs = FakeSQS(rec)
    ingest._queue = IntakeQueue(env["INTAKE_QUEUE_URL"], client=sqs)
    _bill_ingest(bill, rec, ingest.lambda_handler, "webhook_ingest", sends, secret)
    bodies = [m["MessageBody"] for m in sqs.sent]
    attrs = [message_attributes_for_lambda(m["MessageAttributes"]) for m in sqs.sent]
    rec.clear()

    # 2. intake queue -> status_mapper, batches of 10
    apply_environment("status_mapper", config)
    mapper = importlib.import_module("functions.status_mapper.handler")
    dynamo = hub_dynamo(rec)
    mapper._store = DynamoOrderStore(client=dynamo)
    ctx = FakeLambdaContext(physical("status_mapper"), _mem("status_mapper"))
    bill_sqs_batches(bill, "intake", bodies)
    with _Capture() as cap:
        for i in range(0, len(bodies), SQS_BATCH):
            n0 = len(rec.calls)
            reply, cpu_s = _timed(mapper.lambda_handler, sqs_event(bodies[i:i + SQS_BATCH], "intake",
                                                                   attrs[i:i + SQS_BATCH]), ctx)
            if reply.get("batchItemFailures"):
                raise RuntimeError(reply)
            bill.invoke("status_mapper", _mem("status_mapper"), cpu_s, rec.calls[n0:])
    bill.log_bytes["status_mapper"] += cap.bytes
    bill_dynamodb(bill, rec.calls)
    rec.clear()

    # 3. orders stream -> event_publisher -> PutEvents (stream reads by Lambda are free)
    env = apply_environment("event_publisher", config)
    publisher = importlib.import_module("functions.event_publisher.handler")
    events = FakeEvents(rec)
    publisher._publisher = EventBridgePublisher(env["EVENT_BUS_NAME"], client=events)
    ctx = FakeLambdaContext(physical("event_publisher"), _mem("event_publisher"))
    records = dynamo.stream_records
    with _Capture() as cap:
        for i in range(0, len(records), STREAM_BATCH):
            n0 = len(rec.calls)
            reply, cpu_s = _timed(publisher.lambda_handler, {"Records": records[i:i + STREAM_BATCH]}, ctx)
            if reply.get("batchItemFailures"):
                raise RuntimeError(reply)
            bill.invoke("event_publisher", _mem("event_publisher"), cpu_s, rec.calls[n0:])
    bill.log_bytes["event_publisher"] += cap.bytes
    bill.eventbridge_events = sum(_chunks64k(size) for c in rec.calls for size in c.sizes)
    put_events_calls = len(rec.calls)
    rec.clear()

    # 4. rules -> subscriber queues -> dispatcher; the SLA watchdog hears every change too
    deliveries = route_and_dispatch(bill, events.entries, config, dispatcher, _mem("dispatcher"))
    arm_sla_timers(bill, events.entries, config, dynamo, rec)
    kms_estimate(bill, 2 + len(deliveries))
    unique = len({s.event["event_id"] for s in sends})
    return FlowResult(bill, len(sends), unique, deliveries,
                      {"stream records": len(records), "domain events": len(events.entries),
                       "PutEvents calls": put_events_calls})


def run_anchor(config, sends: list, dispatcher) -> FlowResult:
    from bench.anchors import AnchorIngest, AnchorMapper
    from infra.demo.traffic import mall_secret

    bill = Bill(events=len(sends))
    rec = Recorder()
    secret = mall_secret(config)

    env = apply_environment("webhook_ingest", config)
    sqs = FakeSQS(rec)
    ingest = AnchorIngest(sqs, env["INTAKE_QUEUE_URL"], config.config_prefix, config.secrets_prefix)
    _bill_ingest(bill, rec, ingest.lambda_handler, "ingest (anchor)", sends, secret)
    rec.clear()

    # The anchor's queue message carries the request; re-wrap it as the IntakeMessage both mappers read.
    from orderhub.models.envelope import IntakeMessage

    bodies = []
    for m in sqs.sent:
        doc = json.loads(m["MessageBody"])
        bodies.append(IntakeMessage.wrap(doc["channel"], doc["received_at"], doc["request_id"], "203.0.113.10",
                                         doc["headers"], doc["body"].encode()).model_dump_json())
    bill_sqs_batches(bill, "intake", [m["MessageBody"] for m in sqs.sent])

    apply_environment("status_mapper", config)
    dynamo = FakeDynamo({physical("orders"): ("order_id",), physical("order-events"): ("order_id", "event_key"),
                         physical("idempotency"): ("id",)}, recorder=rec)
    events = FakeEvents(rec)
    mapper = AnchorMapper(dynamo, physical("orders"), physical("order-events"), physical("idempotency"),
                          events=events, bus_name=physical("orderhub"), publish=True)
    ctx = FakeLambdaContext(physical("status_mapper"), _mem("status_mapper"))
    with _Capture() as cap:
        for i in range(0, len(bodies), SQS_BATCH):
            n0 = len(rec.calls)
            reply, cpu_s = _timed(mapper.lambda_handler, sqs_event(bodies[i:i + SQS_BATCH], "intake"), ctx)
            if reply.get("batchItemFailures"):
                raise RuntimeError(reply)
            bill.invoke("mapper (anchor)", _mem("status_mapper"), cpu_s, rec.calls[n0:])
    bill.log_bytes["mapper (anchor)"] += cap.bytes
    bill_dynamodb(bill, rec.calls)
    bill.eventbridge_events = sum(_chunks64k(size) for c in rec.calls if c.service == "events" for size in c.sizes)
    put_events_calls = sum(1 for c in rec.calls if c.service == "events")
    rec.clear()

    deliveries = route_and_dispatch(bill, events.entries, config, dispatcher, _mem("dispatcher"))
    arm_sla_timers(bill, events.entries, config, hub_dynamo(rec), rec)  # the same SLA watchdog behind both
    kms_estimate(bill, 2 + len(deliveries))
    unique = len({s.event["event_id"] for s in sends})
    return FlowResult(bill, len(sends), unique, deliveries,
                      {"domain events": len(events.entries), "PutEvents calls": put_events_calls})


def _print_components(ours: FlowResult, anchor: FlowResult) -> list[str]:
    lines = []

    def row(label: str, a: str, b: str, c: str, d: str) -> None:
        lines.append(f"  {label:<52} {a:>12} {b:>10}   {c:>12} {d:>10}")

    row("component", "ours /event", "ours $/M", "anchor/event", "anchor $/M")
    row("-" * 52, "-" * 12, "-" * 10, "-" * 12, "-" * 10)
    o, a = ours.bill, anchor.bill

    def counts(b: Bill) -> dict[str, float]:
        return {"API Gateway HTTP API": b.http_api, "Lambda requests": sum(b.lambda_invocations.values()),
                "Lambda GB-s (arm64)": sum(b.lambda_gb_s.values()), "SQS requests": sum(b.sqs_requests.values()),
                "DynamoDB writes": sum(b.wru.values()), "DynamoDB reads": sum(b.rru.values()),
                "EventBridge events": b.eventbridge_events, "KMS (amortised)": b.kms_requests}

    co, ca = counts(o), counts(a)
    po, pa = o.per_million(), a.per_million()
    for key in po:
        row(key, f"{co[key] / o.events:.4g}", f"${po[key]:.3f}", f"{ca[key] / a.events:.4g}", f"${pa[key]:.3f}")
    row("TOTAL", "", f"${sum(po.values()):.2f}", "", f"${sum(pa.values()):.2f}")
    lines.append("")
    for title, b in (("ours", o), ("anchor", a)):
        lines.append(f"  {title}: write units per event by kind: " + ", ".join(
            f"{k} {v / b.events:.3f}" for k, v in sorted(b.wru.items())))
        lines.append(f"  {title}: read units per event: " + ", ".join(
            f"{k} {v / b.events:.3f}" for k, v in sorted(b.rru.items())))
        lines.append(f"  {title}: SQS requests per event: " + ", ".join(
            f"{k} {v / b.events:.3f}" for k, v in sorted(b.sqs_requests.items())))
        lines.append(f"  {title}: Lambda invocations per event / median billed ms: " + ", ".join(
            f"{k} {v / b.events:.3f} / {sorted(b.lambda_ms[k])[len(b.lambda_ms[k]) // 2]} ms"
            for k, v in b.lambda_invocations.items()))
        fan = b.fanout_per_million()
        lines.append(f"  {title}: subscriber delivery $/M (SQS + dispatcher): " + ", ".join(
            f"{k} ${v:.2f}" for k, v in fan.items())
            + f"; hub without delivery ${sum(b.per_million().values()) - sum(fan.values()):.2f}")
        logs = sum(b.log_bytes.values())
        lines.append(f"  {title}: log bytes per event {logs / b.events:.0f} B "
                     f"(CloudWatch Logs ingestion ${logs / b.events * 1e6 / 1e9 * PRICE['logs_gb']:.2f}/M, "
                     "not in the total; Lambda REPORT lines not included)")
    return lines


def run(events: int = 4000) -> list[Figure]:
    config = hub_config()
    install_config_stubs(config)
    dispatcher = setup_dispatcher(config)
    sends = realistic_stream(events, seed=23)
    ours = run_ours(config, sends, dispatcher)
    anchor = run_anchor(config, sends, dispatcher)

    # The status path: what applying an event writes (orders, the event log, idempotency in the anchor).
    # The SLA watchdog's timers are a feature behind both flows, shown on their own.
    def status_path(bill: Bill) -> dict[str, float]:
        return {k: v for k, v in bill.wru.items() if "sla-timers" not in k}

    wu_o = sum(status_path(ours.bill).values()) / ours.status_events
    wu_a = sum(status_path(anchor.bill).values()) / anchor.status_events
    wu_sla = sum(v for k, v in ours.bill.wru.items() if "sla-timers" in k) / ours.status_events
    wu_o_nogsi = sum(v for k, v in status_path(ours.bill).items() if not k.startswith("GSI")) / ours.status_events
    usd_o = sum(ours.bill.per_million().values())
    usd_a = sum(anchor.bill.per_million().values())
    core_o = usd_o - sum(ours.bill.fanout_per_million().values())
    core_a = usd_a - sum(anchor.bill.fanout_per_million().values())
    lines = _print_components(ours, anchor)
    print("\n".join(["", "== bench.cost: per-component, per webhook event (resends included)"] + lines))
    dup = ours.status_events - ours.unique_events
    figures = [
        Figure("cost", "DynamoDB write units per status event", wu_o, "WU", anchor=wu_a, anchor_unit="WU",
               goal=f"<= {GOAL_WU:g} WU", passed=wu_o <= GOAL_WU, ratio=wu_o / wu_a,
               note=f"{ours.status_events:,} events ({dup} resends); without the event-log GSI copy: "
                    f"{wu_o_nogsi:.2f} WU; by kind: " + ", ".join(
                        f"{k} {v / ours.status_events:.2f}" for k, v in sorted(status_path(ours.bill).items()))),
        Figure("cost", "SLA timer write units per status event (info, both flows)", wu_sla, "WU",
               note="the SLA watchdog arming timers from every domain event (BatchWriteItem, billed per item)"),
        Figure("cost", "US$ per million webhook events", usd_o, "$", anchor=usd_a, anchor_unit="$",
               goal=f"<= ${GOAL_USD_PER_M:.2f}", passed=usd_o <= GOAL_USD_PER_M, ratio=usd_o / usd_a,
               note="; ".join(f"{k} ${v:.2f}" for k, v in ours.bill.per_million().items()) +
                    f"; subscribers {dict(ours.deliveries)} deliveries; {ours.notes}"),
    ]
    figures.append(Figure("cost", "US$ per million, hub only (no subscriber delivery)", core_o, "$", anchor=core_a,
                          anchor_unit="$", ratio=core_o / core_a,
                          note="the same flows without the subscriber queues and the dispatcher: " + ", ".join(
                              f"{k} ${v:.2f}" for k, v in ours.bill.fanout_per_million().items())))
    figures.append(Figure("cost", "(anchor flow detail)", usd_a, "$",
                          note="; ".join(f"{k} ${v:.2f}" for k, v in anchor.bill.per_million().items()) +
                               f"; subscribers {dict(anchor.deliveries)}; {anchor.notes}"))
    figures[-1].passed = None
    run.details = lines  # type: ignore[attr-defined]
    return figures


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--json", help="also write the figures here (bench.run_all)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    figures = run(args.events)
    print_figures(f"bench.cost: write units and US$ per million events (took {time.perf_counter() - t0:.0f} s)",
                  figures)
    print("\n  assumptions: Lambda duration = CPU measured here x 1769/memory MB + waits "
          f"{LATENCY_MS} ms + 1 ms; SQS batches of {SQS_BATCH} (full), stream batches of {STREAM_BATCH}; "
          "idle SQS long polls (fixed per month) and storage not counted; stream reads by Lambda are free; "
          f"KMS amortised at {KMS_REFERENCE_RATE:g} events/s with {KMS_ENVIRONMENTS} environments per side.")
    dump_json(args.json, "cost", figures, getattr(run, "details", []), time.perf_counter() - t0)
    return figures


if __name__ == "__main__":
    main()
