"""The flows bench.cost bills: ours and the anchor, driven through the real code on real boto3 clients.

Each AWS call goes through botocore to a recording fake (bench.wire), so its CPU is in the Lambda
time and the call itself is in the bill. Batches are sized by the traffic (bench.billing.Traffic).
See bench.cost for what is billed and how.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench._support import (
    FakeEvents,
    FakeLambdaContext,
    FakeSQS,
    Recorder,
    apigw_v2_event,
    apply_environment,
    install_config_stubs,
    message_attributes_for_lambda,
    physical,
    sqs_event,
    topology,
)
from bench.billing import (
    LATENCY_MS,
    Bill,
    LogCapture,
    Traffic,
    batch_bounds,
    bill_dynamodb,
    bill_sqs_batches,
    bus_events,
    chunks64k,
    matches,
    timed,
)
from bench.cost_overheads import fresh_config_cache
from bench.fake_dynamodb import FakeDynamo, hub_dynamo
from bench.wire import WireStub, install_real_config_clients, real_client


def _mem(name: str) -> int:
    return topology().function(name).memory_mb


def _trigger(function: str, queue: str | None = None) -> Any:
    return next(t for t in topology().function(function).triggers if queue is None or getattr(t, "queue", "") == queue)


KMS_ENVIRONMENTS = 5  # warm Lambda environments per KMS-encrypted queue side, for the KMS estimate
API_REPLY_HEADERS = 150  # bytes of status line and headers API Gateway adds to a reply (date, ids, length)


class Wire:
    """One flow's AWS: recording fakes behind real boto3 clients, and the configuration fakes."""

    def __init__(self, config: Any) -> None:
        self.rec = Recorder()
        self.ssm, self.secrets = install_config_stubs(config)
        self.stub = WireStub({"ssm": self.ssm, "secrets-manager": self.secrets})
        install_real_config_clients(self.stub)

    def client(self, service: str, fake: Any) -> Any:
        self.stub.fakes[{"events": "eventbridge"}.get(service, service)] = fake
        return real_client(service, self.stub)

    def cold(self) -> None:
        """A function's first invocation starts without configuration cached, as a new environment does."""
        fresh_config_cache()
        self.ssm.names.clear()
        self.secrets.names.clear()

    def config_read(self, bill: Bill, fn: str) -> None:
        """Add what fn read since its cold start (one environment serves all of a function's triggers)."""
        params, secrets = bill.config_reads.get(fn, (set(), set()))
        bill.config_reads[fn] = (params | self.ssm.names, secrets | self.secrets.names)


def run_batches(bill: Bill, wire: Wire, fn: str, handler: Any, events: list[dict], ctx: Any,
                extra_wait_ms: Any = None) -> None:
    """Invoke handler on each event, billing CPU (hub + botocore) and the AWS calls it made."""
    wire.cold()
    with LogCapture() as cap:
        for event in events:
            n0 = len(wire.rec.calls)
            reply, cpu_s = timed(handler, event, ctx, stub=wire.stub)
            if reply.get("batchItemFailures") or reply.get("statusCode", 200) != 200:
                raise RuntimeError(f"{fn}: {reply}")
            bill.invoke(fn, ctx.memory_limit_in_mb, cpu_s, wire.rec.calls[n0:],
                        extra_wait_ms=extra_wait_ms(event) if extra_wait_ms else 0)
            bill.batch_items[fn] += len(event.get("Records", ())) or 1
    bill.log_bytes[fn] += cap.bytes
    wire.config_read(bill, fn)


def route_and_dispatch(bill: Bill, wire: Wire, entries: list[dict], config, dispatcher, traffic: Traffic) -> Counter:
    """EventBridge rules -> subscriber queues (SendMessage by EventBridge) -> dispatcher batches."""
    per_queue: dict[str, list[str]] = defaultdict(list)
    for event in bus_events(entries):
        for sub in config.subscribers:
            if matches(sub.pattern, event):
                body = json.dumps(event)
                per_queue[f"sub-{sub.name}"].append(body)
                bill.sqs_requests[f"SendMessage sub-{sub.name} (EventBridge target)"] += chunks64k(len(body))
    deliveries = Counter()
    ctx = FakeLambdaContext(physical("dispatcher"), _mem("dispatcher"))
    batches = []
    for queue, bodies in per_queue.items():
        trigger = _trigger("dispatcher", queue)
        window = trigger.max_batching_window_s if traffic.subscriber_window_s is None else traffic.subscriber_window_s
        size = traffic.batch(traffic.events_per_s * len(bodies) / bill.events, trigger.batch_size, window)
        for start, end in bill_sqs_batches(bill, queue, bodies, size):
            batches.append((queue, sqs_event(bodies[start:end], queue)))
        deliveries[queue] += len(bodies)
    transport = dispatcher._transport
    for queue in per_queue:
        transport.label = f"push {queue}"
        run_batches(bill, wire, "dispatcher", dispatcher.lambda_handler, [b for q, b in batches if q == queue], ctx,
                    extra_wait_ms=lambda e: LATENCY_MS["http_post"] * len(e["Records"]))
    for label, size in transport.bytes.items():
        bill.egress_bytes[label] += size
    transport.bytes.clear()
    return deliveries


def arm_sla_timers(bill: Bill, wire: Wire, entries: list[dict], config, dynamo: FakeDynamo, traffic: Traffic) -> int:
    """The `to-sla` rule -> sla-events (every domain event) -> sla_watchdog arming SLA timers (EXC-1)."""
    from orderhub.store.sla_timers import DynamoTimerStore

    apply_environment("sla_watchdog", config)
    watchdog = importlib.import_module("functions.sla_watchdog.handler")
    watchdog._timers = DynamoTimerStore(client=wire.client("dynamodb", dynamo))
    bodies = [json.dumps(event) for event in bus_events(entries)]
    for body in bodies:
        bill.sqs_requests["SendMessage sla-events (EventBridge target)"] += chunks64k(len(body))
    trigger = _trigger("sla_watchdog")
    size = traffic.batch(traffic.events_per_s * len(bodies) / bill.events, trigger.batch_size,
                         trigger.max_batching_window_s)
    bounds = bill_sqs_batches(bill, "sla-events", bodies, size)
    wire.rec.clear()
    run_batches(bill, wire, "sla_watchdog", watchdog.lambda_handler,
                [sqs_event(bodies[s:e], "sla-events") for s, e in bounds],
                FakeLambdaContext(physical("sla_watchdog"), _mem("sla_watchdog")))
    bill_dynamodb(bill, wire.rec.calls)
    wire.rec.clear()
    return len(bodies)


def kms_estimate(bill: Bill, queues_with_traffic: int, traffic: Traffic) -> None:
    """SQS SSE-KMS: GenerateDataKey by each producer environment and Decrypt by each consumer
    environment, once per data-key reuse period (300 s), per queue; DynamoDB caches its table key
    likewise. Given per event at the traffic's rate."""
    calls_per_300s = queues_with_traffic * 2 * KMS_ENVIRONMENTS + 2 * 2 * KMS_ENVIRONMENTS  # queues + 2 tables
    bill.kms_requests = calls_per_300s / (traffic.events_per_s * 300) * bill.events


@dataclass
class FlowResult:
    bill: Bill
    status_events: int
    unique_events: int
    deliveries: Counter
    notes: dict[str, Any] = field(default_factory=dict)


def setup_dispatcher(config) -> Any:
    apply_environment("dispatcher", config)
    dispatcher = importlib.import_module("functions.dispatcher.handler")

    from orderhub.outbound_http import HttpReply

    class _Ok:
        """Every receiver answers at once: a webhook with 200, a robot with errcode 0. Counts the bytes
        sent (request line, headers, body: data transfer out)."""

        def __init__(self) -> None:
            self.label = "push"
            self.bytes: Counter = Counter()

        def post(self, url: str, body: bytes, headers: dict, timeouts: Any) -> HttpReply:
            self.bytes[self.label] += (len(url) + 16 + sum(len(k) + len(str(v)) + 4 for k, v in headers.items())
                                       + len(body))
            return HttpReply(200, b'{"errcode":0,"errmsg":"ok"}')

    dispatcher._transport = _Ok()
    return dispatcher


def _bill_ingest(bill: Bill, wire: Wire, handler, label: str, sends, secret: str) -> None:
    """HTTP API -> an ingest handler -> SendMessage, billed under `label` (ours and the anchor alike)."""
    from infra.demo.traffic import mall_headers

    ctx = FakeLambdaContext(physical("webhook_ingest"), _mem("webhook_ingest"))
    wire.cold()
    with LogCapture() as cap:
        for s in sends:
            n0 = len(wire.rec.calls)
            reply, cpu_s = timed(handler, apigw_v2_event(s.body, mall_headers(secret, s.body)), ctx, stub=wire.stub)
            if reply["statusCode"] != 200:
                raise RuntimeError(reply)
            bill.http_api += 1
            bill.egress_bytes["HTTP API replies"] += (len(reply.get("body", "")) + API_REPLY_HEADERS
                                                      + len(json.dumps(reply.get("headers", {}))))
            bill.invoke(label, _mem("webhook_ingest"), cpu_s, wire.rec.calls[n0:])
    bill.log_bytes[label] += cap.bytes
    wire.config_read(bill, label)
    for c in wire.rec.calls:
        bill.sqs_requests["SendMessage intake"] += chunks64k(c.size)


def _intake_batches(bill: Bill, bodies: list[str], traffic: Traffic) -> list[tuple[int, int]]:
    trigger = _trigger("status_mapper")
    size = traffic.batch(traffic.events_per_s * len(bodies) / bill.events, trigger.batch_size,
                         trigger.max_batching_window_s)
    return bill_sqs_batches(bill, "intake", bodies, size)


def run_ours(config, sends: list, dispatcher, traffic: Traffic) -> FlowResult:
    from infra.demo.traffic import mall_secret
    from orderhub.bus.publisher import EventBridgePublisher
    from orderhub.intake import IntakeQueue
    from orderhub.store.health import ChannelHealth
    from orderhub.store.ledger import DynamoLedger
    from orderhub.store.orders import DynamoOrderStore

    bill = Bill(events=len(sends))
    wire = Wire(config)
    rec = wire.rec

    # 1. HTTP API -> webhook_ingest -> SendMessage
    env = apply_environment("webhook_ingest", config)
    ingest = importlib.import_module("functions.webhook_ingest.handler")
    sqs = FakeSQS(rec)
    ingest._queue = IntakeQueue(env["INTAKE_QUEUE_URL"], client=wire.client("sqs", sqs))
    _bill_ingest(bill, wire, ingest.lambda_handler, "webhook_ingest", sends, mall_secret(config))
    bodies = [m["MessageBody"] for m in sqs.sent]
    attrs = [message_attributes_for_lambda(m["MessageAttributes"]) for m in sqs.sent]
    rec.clear()

    # 2. intake queue -> status_mapper
    apply_environment("status_mapper", config)
    mapper = importlib.import_module("functions.status_mapper.handler")
    dynamo = hub_dynamo(rec)
    client = wire.client("dynamodb", dynamo)
    mapper._store, mapper._health = DynamoOrderStore(client=client), ChannelHealth(client=client)
    mapper._ledger = DynamoLedger(client=client)
    run_batches(bill, wire, "status_mapper", mapper.lambda_handler,
                [sqs_event(bodies[s:e], "intake", attrs[s:e]) for s, e in _intake_batches(bill, bodies, traffic)],
                FakeLambdaContext(physical("status_mapper"), _mem("status_mapper")))
    bill_dynamodb(bill, rec.calls)
    rec.clear()

    # 3. orders stream -> event_publisher -> PutEvents (stream reads by Lambda are free)
    env = apply_environment("event_publisher", config)
    publisher = importlib.import_module("functions.event_publisher.handler")
    events = FakeEvents(rec)
    publisher._publisher = EventBridgePublisher(env["EVENT_BUS_NAME"], client=wire.client("events", events))
    records = dynamo.stream_records
    trigger = _trigger("event_publisher")
    size = traffic.batch(traffic.events_per_s * len(records) / bill.events, trigger.batch_size,
                         trigger.max_batching_window_s, pollers=1)  # one shard below 1,000 writes/s
    run_batches(bill, wire, "event_publisher", publisher.lambda_handler,
                [{"Records": records[s:e]} for s, e in batch_bounds(len(records), size)],
                FakeLambdaContext(physical("event_publisher"), _mem("event_publisher")))
    bill.eventbridge_events = sum(chunks64k(size) for c in rec.calls for size in c.sizes)
    put_events_calls = len(rec.calls)
    rec.clear()

    # 4. rules -> subscriber queues -> dispatcher; the SLA watchdog hears every change too
    deliveries = route_and_dispatch(bill, wire, events.entries, config, dispatcher, traffic)
    arm_sla_timers(bill, wire, events.entries, config, dynamo, traffic)
    kms_estimate(bill, 2 + len(deliveries), traffic)
    unique = len({s.event["event_id"] for s in sends})
    return FlowResult(bill, len(sends), unique, deliveries,
                      {"stream records": len(records), "domain events": len(events.entries),
                       "PutEvents calls": put_events_calls, "stream batch": round(size, 1)})


def run_anchor(config, sends: list, dispatcher, traffic: Traffic) -> FlowResult:
    from bench.anchors import AnchorIngest, AnchorMapper
    from infra.demo.traffic import mall_secret

    bill = Bill(events=len(sends))
    wire = Wire(config)
    rec = wire.rec

    env = apply_environment("webhook_ingest", config)
    sqs = FakeSQS(rec)
    ingest = AnchorIngest(wire.client("sqs", sqs), env["INTAKE_QUEUE_URL"], config.config_prefix,
                          config.secrets_prefix)
    _bill_ingest(bill, wire, ingest.lambda_handler, "ingest (anchor)", sends, mall_secret(config))
    rec.clear()

    # The anchor's queue message carries the request; re-wrap it as the IntakeMessage both mappers read.
    from orderhub.models.envelope import IntakeMessage

    bodies = []
    for m in sqs.sent:
        doc = json.loads(m["MessageBody"])
        bodies.append(IntakeMessage.wrap(doc["channel"], doc["received_at"], doc["request_id"], "203.0.113.10",
                                         doc["headers"], doc["body"].encode()).model_dump_json())
    bounds = _intake_batches(bill, [m["MessageBody"] for m in sqs.sent], traffic)

    apply_environment("status_mapper", config)
    dynamo = FakeDynamo({physical("orders"): ("order_id",), physical("order-events"): ("order_id", "event_key"),
                         physical("idempotency"): ("id",)}, recorder=rec)
    events = FakeEvents(rec)
    mapper = AnchorMapper(wire.client("dynamodb", dynamo), physical("orders"), physical("order-events"),
                          physical("idempotency"), events=wire.client("events", events),
                          bus_name=physical("orderhub"), publish=True)
    run_batches(bill, wire, "mapper (anchor)", mapper.lambda_handler,
                [sqs_event(bodies[s:e], "intake") for s, e in bounds],
                FakeLambdaContext(physical("status_mapper"), _mem("status_mapper")))
    bill_dynamodb(bill, rec.calls)
    bill.eventbridge_events = sum(chunks64k(size) for c in rec.calls if c.service == "events" for size in c.sizes)
    put_events_calls = sum(1 for c in rec.calls if c.service == "events")
    rec.clear()

    deliveries = route_and_dispatch(bill, wire, events.entries, config, dispatcher, traffic)
    arm_sla_timers(bill, wire, events.entries, config, hub_dynamo(rec), traffic)  # the same watchdog behind both
    kms_estimate(bill, 2 + len(deliveries), traffic)
    unique = len({s.event["event_id"] for s in sends})
    return FlowResult(bill, len(sends), unique, deliveries,
                      {"domain events": len(events.entries), "PutEvents calls": put_events_calls})
