"""DynamoDB write units per status event and AWS list-price cost per million webhook events.

    python -m bench.cost [--events 4000]

Drives the real code over a realistic order mix (infra.demo.traffic.synthetic_mall_events interleaved
by event time, ~5 % resends) on real boto3 clients answered under botocore by recording fakes
(bench.wire: botocore's CPU is in the Lambda time, the stub's own is not), then bills the calls:

ours    HTTP API -> webhook_ingest (SendMessage) -> intake queue -> status_mapper
        (DynamoOrderStore: GetItem, conditional PutItem of the log entry, conditional PutItem of the
        order) -> orders stream -> event_publisher (PutEvents of events_for_stream_record) ->
        EventBridge rules of config/local.toml's subscribers -> subscriber queues -> dispatcher;
        and the `to-sla` rule -> sla-events -> sla_watchdog arming SLA timers (BatchWriteItem).
ANCHOR  the same flow built the common way (bench.anchors): Powertools ingest -> queue -> mapper
        with Powertools idempotency (its real calls against the recording fake), GetItem, a
        two-item TransactWriteItems (order + event-log/outbox item) and PutEvents from the handler
        -> the same rules, queues, dispatcher and SLA watchdog.

Batches are as Lambda's pollers form them at a steady rate (bench.billing.Traffic): at 10 events/s
most are partial (the intake queue's 1 s window over 5 pollers gathers ~2 messages; a subscriber
queue without a window gets 1), at the 11.11 peak (300 events/s) they fill. Each rate is its own
run of both flows. bench.cost_overheads adds what a per-event count leaves out (logs, configuration
reads, egress, the scheduled runs, idle polls, stored secrets) to the same total.
Write units come from the sizes of the items actually written (orderhub.store.attributes):
1 WRU per started KB of the larger of the old and new item, failed conditional writes included;
2 per KB per item in a transaction; a GSI the topology declares (the stack projects ALL) bills the write
again for every item written with the index's keys.
Reads: 1 RRU per started 4 KB, strongly consistent (minimum 1, item or not).
GOALS: <= 2 write units per status event (the status path: orders and event log, idempotency and
transactions in the anchor; the SLA timers are shown apart); <= $3.50 per million webhook events at
10 events/s (everything above included).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench._support import (
    FakeEvents,
    FakeLambdaContext,
    FakeSQS,
    Figure,
    Recorder,
    apigw_v2_event,
    apply_environment,
    dump_json,
    hub_config,
    install_config_stubs,
    message_attributes_for_lambda,
    physical,
    print_figures,
    realistic_stream,
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
from bench.cost_overheads import ScheduledRun, add_overheads, fresh_config_cache, measure_scheduled
from bench.fake_dynamodb import FakeDynamo, hub_dynamo
from bench.wire import WireStub, install_real_config_clients, real_client

GOAL_WU = 2.0
GOAL_USD_PER_M = 3.50
NORMAL = Traffic("a normal day, 10 events/s", 10.0)
PEAK = Traffic("the 11.11 peak, 300 events/s (30x)", 300.0)
KMS_ENVIRONMENTS = 5  # warm Lambda environments per KMS-encrypted queue side, for the KMS estimate
API_REPLY_HEADERS = 150  # bytes of status line and headers API Gateway adds to a reply (date, ids, length)


def _mem(name: str) -> int:
    return topology().function(name).memory_mb


def _trigger(function: str, queue: str | None = None) -> Any:
    return next(t for t in topology().function(function).triggers if queue is None or getattr(t, "queue", "") == queue)


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
        bill.config_reads[fn] = (set(self.ssm.names), set(self.secrets.names))


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
        size = traffic.batch(traffic.events_per_s * len(bodies) / bill.events, trigger.batch_size,
                             trigger.max_batching_window_s)
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


def _print_components(title: str, ours: FlowResult, anchor: FlowResult) -> list[str]:
    lines = [f"  -- {title}"]

    def row(label: str, a: str, b: str, c: str, d: str) -> None:
        lines.append(f"  {label:<62} {a:>12} {b:>10}   {c:>12} {d:>10}")

    row("component", "ours /event", "ours $/M", "anchor/event", "anchor $/M")
    row("-" * 62, "-" * 12, "-" * 10, "-" * 12, "-" * 10)
    o, a = ours.bill, anchor.bill

    def counts(b: Bill) -> dict[str, float]:
        return {"API Gateway HTTP API": b.http_api, "Lambda requests": sum(b.lambda_invocations.values()),
                "Lambda GB-s (arm64)": sum(b.lambda_gb_s.values()), "SQS requests": sum(b.sqs_requests.values()),
                "DynamoDB writes": sum(b.wru.values()), "DynamoDB reads": sum(b.rru.values()),
                "EventBridge events": b.eventbridge_events, "KMS (amortised)": b.kms_requests}

    co, ca = counts(o), counts(a)
    po, pa = o.per_million(), a.per_million()
    for key in po:
        n_o = f"{co[key] / o.events:.4g}" if key in co else "-"
        n_a = f"{ca[key] / a.events:.4g}" if key in ca else "-"
        row(key, n_o, f"${po[key]:.3f}", n_a, f"${pa.get(key, 0):.3f}")
    row("TOTAL", "", f"${sum(po.values()):.2f}", "", f"${sum(pa.values()):.2f}")
    for name, b in (("ours", o), ("anchor", a)):
        lines.append(f"  {name}: write units per event by kind: " + ", ".join(
            f"{k} {v / b.events:.3f}" for k, v in sorted(b.wru.items())))
        lines.append(f"  {name}: read units per event: " + ", ".join(
            f"{k} {v / b.events:.3f}" for k, v in sorted(b.rru.items())))
        lines.append(f"  {name}: SQS requests per event: " + ", ".join(
            f"{k} {v / b.events:.3f}" for k, v in sorted(b.sqs_requests.items())))
        lines.append(f"  {name}: Lambda invocations per event / events per invocation / median billed ms: "
                     + ", ".join(f"{k} {v / b.events:.3f} / {_per_invocation(b, k):.1f} / "
                                 f"{sorted(b.lambda_ms[k])[len(b.lambda_ms[k]) // 2]} ms"
                                 for k, v in b.lambda_invocations.items()))
        fan = b.fanout_per_million()
        lines.append(f"  {name}: subscriber delivery $/M (SQS + dispatcher + egress): " + ", ".join(
            f"{k} ${v:.2f}" for k, v in fan.items())
            + f"; hub without delivery ${sum(b.per_million().values()) - sum(fan.values()):.2f}")
        for key, how in b.notes.items():
            lines.append(f"  {name}: {key}: {how}")
    lines.append("")
    return lines


def _per_invocation(b: Bill, fn: str) -> float:
    """Items per invocation: requests for ingest, messages or records for the batch functions."""
    invocations = len(b.lambda_ms[fn])
    return b.batch_items.get(fn, invocations) / invocations if invocations else 0.0


def _flows(config, sends, dispatcher, traffic: Traffic, scheduled: list[ScheduledRun],
           secrets_total: int) -> tuple[FlowResult, FlowResult]:
    out = []
    for run_flow in (run_ours, run_anchor):
        flow = run_flow(config, sends, dispatcher, traffic)
        flow.bill.notes = add_overheads(flow.bill, traffic, scheduled, secrets_total)
        out.append(flow)
    return out[0], out[1]


def run(events: int = 4000) -> list[Figure]:
    config = hub_config()
    install_config_stubs(config)
    dispatcher = setup_dispatcher(config)
    sends = realistic_stream(events, seed=23)
    scheduled = measure_scheduled(config)
    secrets_total = len(config.parameter_documents()[1])
    ours, anchor = _flows(config, sends, dispatcher, NORMAL, scheduled, secrets_total)
    peak_ours, peak_anchor = _flows(config, sends, dispatcher, PEAK, scheduled, secrets_total)

    # The status path: what applying an event writes (orders, the event log, idempotency in the anchor).
    # The SLA watchdog's timers are a feature behind both flows, shown on their own.
    def status_path(bill: Bill) -> dict[str, float]:
        return {k: v for k, v in bill.wru.items() if "sla-timers" not in k}

    wu_o = sum(status_path(ours.bill).values()) / ours.status_events
    wu_a = sum(status_path(anchor.bill).values()) / anchor.status_events
    wu_sla = sum(v for k, v in ours.bill.wru.items() if "sla-timers" in k) / ours.status_events
    wu_o_nogsi = sum(v for k, v in status_path(ours.bill).items() if not k.startswith("GSI")) / ours.status_events

    def total(flow: FlowResult) -> float:
        return sum(flow.bill.per_million().values())

    def core(flow: FlowResult) -> float:
        return total(flow) - sum(flow.bill.fanout_per_million().values())

    lines = (_print_components(f"at {NORMAL.name} ({NORMAL.events_per_month / 1e6:.1f} M events a month)",
                               ours, anchor)
             + _print_components(f"at {PEAK.name}; fixed items at the same rate's monthly volume",
                                 peak_ours, peak_anchor))
    lines.append("  scheduled runs (each every 5 minutes, one run): " + "; ".join(
        f"{r.function} {r.cpu_s * 1e3:.1f} ms CPU, {r.log_bytes} B logs, calls "
        + (", ".join(f"{op} {n}" for op, n in sorted(r.calls.items())) or "none") + f" ({r.note})"
        for r in scheduled))
    print("\n".join(["", "== bench.cost: per-component, per webhook event (resends included)"] + lines))
    dup = ours.status_events - ours.unique_events
    item_list = "; ".join(f"{k} ${v:.2f}" for k, v in ours.bill.per_million().items())
    figures = [
        Figure("cost", "DynamoDB write units per status event", wu_o, "WU", anchor=wu_a, anchor_unit="WU",
               goal=f"<= {GOAL_WU:g} WU", passed=wu_o <= GOAL_WU, ratio=wu_o / wu_a,
               note=f"{ours.status_events:,} events ({dup} resends); without the event-log GSI copy: "
                    f"{wu_o_nogsi:.2f} WU; by kind: " + ", ".join(
                        f"{k} {v / ours.status_events:.2f}" for k, v in sorted(status_path(ours.bill).items()))),
        Figure("cost", "SLA timer write units per status event (info, both flows)", wu_sla, "WU",
               note="the SLA watchdog arming timers from every domain event (BatchWriteItem, billed per item)"),
        Figure("cost", "US$ per million webhook events, at 10 events/s", total(ours), "$", anchor=total(anchor),
               anchor_unit="$", goal=f"<= ${GOAL_USD_PER_M:.2f}", passed=total(ours) <= GOAL_USD_PER_M,
               ratio=total(ours) / total(anchor),
               note=(f"MISS: ${total(ours) - GOAL_USD_PER_M:.2f} over the goal; the largest items are "
                     + ", ".join(f"{k} ${v:.2f}" for k, v in sorted(ours.bill.per_million().items(),
                                                                  key=lambda kv: -kv[1])[:3]) + ". "
                     if total(ours) > GOAL_USD_PER_M else "")
                    + f"every item: {item_list}; subscribers {dict(ours.deliveries)} deliveries; {ours.notes}"),
        Figure("cost", "US$ per million webhook events, at the 11.11 peak (300 events/s)", total(peak_ours), "$",
               anchor=total(peak_anchor), anchor_unit="$", ratio=total(peak_ours) / total(peak_anchor),
               note="full batches; " + "; ".join(f"{k} ${v:.2f}" for k, v in peak_ours.bill.per_million().items())),
        Figure("cost", "US$ per million, hub only (no subscriber delivery), at 10 events/s", core(ours), "$",
               anchor=core(anchor), anchor_unit="$", ratio=core(ours) / core(anchor),
               note="the same flows without the subscriber queues, the dispatcher and the pushes' egress: "
                    + ", ".join(f"{k} ${v:.2f}" for k, v in ours.bill.fanout_per_million().items())),
        Figure("cost", "(anchor flow detail, at 10 events/s)", total(anchor), "$",
               note="; ".join(f"{k} ${v:.2f}" for k, v in anchor.bill.per_million().items()) +
                    f"; subscribers {dict(anchor.deliveries)}; {anchor.notes}"),
    ]
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
    print(f"\n  assumptions: Lambda duration = CPU measured here (hub + botocore) x 1769/memory MB + waits "
          f"{LATENCY_MS} ms + 1 ms; batches as Lambda's pollers form them at the rate (bench.billing.Traffic); "
          "stream reads by Lambda are free; "
          f"KMS amortised with {KMS_ENVIRONMENTS} environments per side; the rest: bench.cost_overheads.")
    dump_json(args.json, "cost", figures, getattr(run, "details", []), time.perf_counter() - t0)
    return figures


if __name__ == "__main__":
    main()
