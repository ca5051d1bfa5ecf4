"""Hub CPU per event with real boto3 clients in the loop, beside the same run with plain-Python fakes.

    python -m bench.real_clients [--events 1000] [--repeats 3]

bench.cpu answers every AWS call with a Python fake, so botocore's work for each call (parameter
validation, serialisation, endpoint resolution, SigV4 signing, the retry handler, response
parsing) is outside its figures. Here each function runs twice over the same events, chunk by
chunk alternating: once on the fakes, once on real boto3 clients configured as `orderhub.aws`
configures the hub's, answered just under botocore by `bench.wire` (the same fakes behind a
`before-send` hook). The hook's own CPU (JSON in and out, the fake) is measured and taken out, so
"real clients" = the hub + botocore, what a Lambda pays. AWS calls per event are counted by
botocore's `before-call` hook on the real path, per function and operation.

Functions: (a) webhook_ingest (signed mall webhooks, as bench.cpu), (b) status_mapper (what (a)
enqueued, SQS batches of 10), (c) event_publisher (the orders-stream records (b) produced,
batches of 100 as the stream trigger is configured), (d) dispatcher (the domain events (c) put on
the bus, to the subscriber queues their rules match, batches of 10; every receiver answers 200 at
once: the push itself is bench.dispatch's), (e) sla_watchdog arming timers (every domain event,
batches of 100). Configuration reads go through Powertools parameters on real SSM / Secrets
Manager clients too; its cache (60 s) keeps them out of the per-event figure, and they are
counted apart (bench.cost bills them per execution environment).
No goal: information beside bench.cpu's figures (whose goals are on the fake path).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench._support import (
    FakeEvents,
    FakeLambdaContext,
    FakeSQS,
    Figure,
    apply_environment,
    dump_json,
    hub_config,
    install_config_stubs,
    message_attributes_for_lambda,
    physical,
    print_figures,
    quiet_stdout,
    sqs_event,
)
from bench.fake_dynamodb import FakeDynamo, hub_dynamo
from bench.wire import WireStub, install_real_config_clients, real_client

CONFIG_OPS = ("ssm GetParameter", "secrets-manager GetSecretValue")


@dataclass
class Path:
    """One way of running a function: what to do before a chunk, and whether the wire stub answers it."""

    prepare: Callable[[], None]
    wired: bool


@dataclass
class Measured:
    function: str
    unit: str  # what an "event" is for this function
    events: int
    fake_s: float  # CPU per event, fakes
    real_s: float  # CPU per event, real clients, stub's own CPU taken out
    stub_s: float  # the stub's CPU per event (excluded above)
    calls: Counter = field(default_factory=Counter)  # AWS API calls over `events`, real path


def _time_chunks(fn: Callable[[Any], Any], paths: dict[str, Path], chunks: list[list[Any]], repeats: int,
                 stub: WireStub, check: Callable[[Any], None],
                 reset: Callable[[], None] | None = None) -> dict[str, tuple[float, float]]:
    """Per path: (CPU s summed over chunks, each chunk's best of `repeats`, stub CPU taken out; stub s).

    Paths alternate chunk by chunk so other load on this shared machine falls on both alike."""
    best = {name: [float("inf")] * len(chunks) for name in paths}
    stub_at_best = {name: [0.0] * len(chunks) for name in paths}
    for _ in range(repeats):
        if reset:
            reset()
        for i, chunk in enumerate(chunks):
            for name, path in paths.items():
                path.prepare()
                stub0 = stub.stub_cpu_s
                with quiet_stdout():
                    t0 = time.process_time()
                    replies = [fn(x) for x in chunk]
                    elapsed = time.process_time() - t0
                stubbed = stub.stub_cpu_s - stub0
                for reply in replies:
                    check(reply)
                if elapsed - stubbed < best[name][i]:
                    best[name][i] = elapsed - stubbed
                    stub_at_best[name][i] = stubbed
    return {name: (sum(best[name]), sum(stub_at_best[name])) for name in paths}


def _count(fn: Callable[[Any], Any], inputs: list[Any], stub: WireStub, check: Callable[[Any], None]) -> Counter:
    """AWS calls the real path makes over `inputs` (one pass)."""
    stub.reset_counts()
    with quiet_stdout():
        for x in inputs:
            check(fn(x))
    return Counter(stub.calls)


def _ok_200(reply: dict) -> None:
    if reply.get("statusCode") != 200:
        raise RuntimeError(f"ingest replied {reply}")


def _no_failures(reply: dict) -> None:
    if reply.get("batchItemFailures"):
        raise RuntimeError(f"batch failures: {reply}")


def _chunked(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class Bench:
    """The fakes behind both paths, the wire stub, and what each function hands the next."""

    def __init__(self, events: int, repeats: int) -> None:
        self.config = hub_config()
        self.events, self.repeats = events, repeats
        ssm, secrets = install_config_stubs(self.config)
        self.config_fakes = {"ssm": ssm, "secrets-manager": secrets}
        self.stub = WireStub({**self.config_fakes, "sqs": FakeSQS(), "eventbridge": FakeEvents(),
                              "dynamodb": hub_dynamo()})
        self.config_calls: Counter = Counter()
        self.results: list[Measured] = []

    def _config_reads(self, fn: Callable[[], None]) -> None:
        """Run fn with configuration read over real clients; count those reads apart."""
        install_real_config_clients(self.stub)
        before = Counter({op: self.stub.calls[op] for op in CONFIG_OPS})
        with quiet_stdout():
            fn()
        for op in CONFIG_OPS:
            self.config_calls[op] += self.stub.calls[op] - before[op]

    def measure(self, function: str, unit: str, fn: Callable[[Any], Any], paths: dict[str, Path],
                inputs: list[Any], chunk: int, check: Callable[[Any], None], events: int,
                reset: Callable[[], None] | None = None, fresh: Callable[[], None] | None = None) -> None:
        if fresh:
            fresh()
        paths["real clients"].prepare()
        calls = _count(fn, inputs, self.stub, check)
        times = _time_chunks(fn, paths, _chunked(inputs, chunk), self.repeats, self.stub, check, reset)
        fake_s, _ = times["fakes"]
        real_s, stub_s = times["real clients"]
        self.results.append(Measured(function, unit, events, fake_s / events, real_s / events, stub_s / events,
                                     Counter({k: v for k, v in calls.items() if k not in CONFIG_OPS})))

    # --- (a) ingest -------------------------------------------------------------------------

    def ingest(self) -> tuple[list[str], list[dict]]:
        from bench.cpu import signed_requests
        from orderhub.intake import IntakeQueue

        env = apply_environment("webhook_ingest", self.config)
        handler = importlib.import_module("functions.webhook_ingest.handler")
        ctx = FakeLambdaContext(physical("webhook_ingest"), 512)
        fake_sqs, wired_sqs = FakeSQS(), FakeSQS()
        self.stub.fakes["sqs"] = wired_sqs
        fake_queue = IntakeQueue(env["INTAKE_QUEUE_URL"], client=fake_sqs)
        real_queue = IntakeQueue(env["INTAKE_QUEUE_URL"], client=real_client("sqs", self.stub))
        requests = signed_requests(self.config, 300 + self.events)
        warm, measured = requests[:300], requests[300:]

        def lambda_handler(e: dict) -> Any:
            return handler.lambda_handler(e, ctx)

        def use(queue: IntakeQueue) -> Callable[[], None]:
            return lambda: setattr(handler, "_queue", queue)

        paths = {"fakes": Path(use(fake_queue), False), "real clients": Path(use(real_queue), True)}
        self._config_reads(lambda: [(p.prepare(), [lambda_handler(e) for e in warm]) for p in paths.values()])
        n0 = len(wired_sqs.sent)
        self.measure("(a) webhook_ingest", "request", lambda_handler, paths, measured, 100, _ok_200, len(measured))
        sent = wired_sqs.sent[n0:n0 + len(measured)]  # the counting pass: what the mapper gets
        fake_sqs.keep = wired_sqs.keep = False
        return ([m["MessageBody"] for m in sent],
                [message_attributes_for_lambda(m.get("MessageAttributes") or {}) for m in sent])

    # --- (b) status mapping -----------------------------------------------------------------

    def mapping(self, bodies: list[str], attrs: list[dict]) -> FakeDynamo:
        from orderhub.store.health import ChannelHealth
        from orderhub.store.ledger import DynamoLedger
        from orderhub.store.orders import DynamoOrderStore

        apply_environment("status_mapper", self.config)
        handler = importlib.import_module("functions.status_mapper.handler")
        ctx = FakeLambdaContext(physical("status_mapper"), 512)
        batches = [sqs_event(bodies[i:i + 10], "intake", attrs[i:i + 10]) for i in range(0, len(bodies), 10)]
        real = real_client("dynamodb", self.stub)
        real_store, real_health = DynamoOrderStore(client=real), ChannelHealth(client=real)
        real_ledger = DynamoLedger(client=real)
        state: dict[str, Any] = {}

        def reset() -> None:
            state["fake"] = hub_dynamo()
            state["fake_store"] = DynamoOrderStore(client=state["fake"])
            state["fake_ledger"] = DynamoLedger(client=state["fake"])
            state["fake_health"] = ChannelHealth(client=state["fake"])
            self.stub.fakes["dynamodb"] = hub_dynamo()

        def use(store: Callable[[], Any], health: Callable[[], Any], ledger: Callable[[], Any]) -> Callable[[], None]:
            return lambda: (setattr(handler, "_store", store()), setattr(handler, "_health", health()),
                            setattr(handler, "_ledger", ledger()))

        paths = {"fakes": Path(use(lambda: state["fake_store"], lambda: state["fake_health"],
                                   lambda: state["fake_ledger"]), False),
                 "real clients": Path(use(lambda: real_store, lambda: real_health, lambda: real_ledger), True)}

        def lambda_handler(batch: dict) -> Any:
            return handler.lambda_handler(batch, ctx)

        reset()
        self._config_reads(lambda: [(p.prepare(), [lambda_handler(b) for b in batches[:20]]) for p in paths.values()])
        reset()
        self.measure("(b) status_mapper", "event", lambda_handler, paths, batches, 10, _no_failures, len(bodies),
                     reset=reset)
        # A fresh pass on each path: the same items must come out of both (the wire stub changes how
        # calls travel, not what they do), and the wire path's stream is what publishing gets.
        reset()
        with quiet_stdout():
            for path in paths.values():
                path.prepare()
                for b in batches:
                    lambda_handler(b)
        _same_tables(state["fake"], self.stub.fakes["dynamodb"])
        return self.stub.fakes["dynamodb"]

    # --- (c) publishing ---------------------------------------------------------------------

    def publishing(self, dynamo: FakeDynamo) -> list[dict]:
        from orderhub.bus.publisher import EventBridgePublisher

        env = apply_environment("event_publisher", self.config)
        handler = importlib.import_module("functions.event_publisher.handler")
        ctx = FakeLambdaContext(physical("event_publisher"), 256)
        fake_events, wired_events = FakeEvents(), FakeEvents()
        self.stub.fakes["eventbridge"] = wired_events
        fake = EventBridgePublisher(env["EVENT_BUS_NAME"], client=fake_events)
        real = EventBridgePublisher(env["EVENT_BUS_NAME"], client=real_client("events", self.stub))
        records = dynamo.stream_records
        batches = [{"Records": records[i:i + 100]} for i in range(0, len(records), 100)]
        paths = {"fakes": Path(lambda: setattr(handler, "_publisher", fake), False),
                 "real clients": Path(lambda: setattr(handler, "_publisher", real), True)}

        def lambda_handler(batch: dict) -> Any:
            return handler.lambda_handler(batch, ctx)

        self._config_reads(lambda: [(p.prepare(), [lambda_handler(b) for b in batches[:2]]) for p in paths.values()])
        n0 = len(wired_events.entries)
        paths["real clients"].prepare()
        with quiet_stdout():
            for b in batches:
                _no_failures(lambda_handler(b))
        entries = wired_events.entries[n0:]  # what the bus gets: for dispatch and the SLA timers
        fake_events.keep = wired_events.keep = False
        self.measure("(c) event_publisher", "stream record", lambda_handler, paths, batches, 2, _no_failures,
                     len(records))
        return entries

    # --- (d) dispatch -----------------------------------------------------------------------

    def dispatch(self, entries: list[dict]) -> None:
        from bench.billing import bus_events, matches
        from bench.cost_flows import setup_dispatcher

        dispatcher = setup_dispatcher(self.config)  # every receiver answers 200 at once
        ctx = FakeLambdaContext(physical("dispatcher"), 256)
        batches = []
        for sub in self.config.subscribers:
            bodies = [json.dumps(e) for e in bus_events(entries) if matches(sub.pattern, e)]
            batches += [sqs_event(bodies[i:i + 10], f"sub-{sub.name}") for i in range(0, len(bodies), 10)]
        deliveries = sum(len(b["Records"]) for b in batches)
        wired_sqs = FakeSQS()
        self.stub.fakes["sqs"] = wired_sqs
        real_sqs = real_client("sqs", self.stub)
        fake_sqs = FakeSQS()
        aws = importlib.import_module("orderhub.aws")

        def use(client: Any) -> Callable[[], None]:  # the dispatcher's only AWS client (retries, parking)
            return lambda: setattr(dispatcher, "client", lambda service: client)

        paths = {"fakes": Path(use(fake_sqs), False), "real clients": Path(use(real_sqs), True)}

        def lambda_handler(batch: dict) -> Any:
            return dispatcher.lambda_handler(batch, ctx)

        self._config_reads(lambda: [(p.prepare(), [lambda_handler(b) for b in batches[:10]]) for p in paths.values()])
        self.measure("(d) dispatcher", "delivery", lambda_handler, paths, batches, 10, _no_failures, deliveries)
        dispatcher.client = aws.client

    # --- (e) SLA timers ---------------------------------------------------------------------

    def sla_timers(self, entries: list[dict]) -> None:
        from bench.billing import bus_events
        from orderhub.store.sla_timers import DynamoTimerStore

        apply_environment("sla_watchdog", self.config)
        watchdog = importlib.import_module("functions.sla_watchdog.handler")
        ctx = FakeLambdaContext(physical("sla_watchdog"), 512)
        bodies = [json.dumps(e) for e in bus_events(entries)]
        batches = [sqs_event(bodies[i:i + 100], "sla-events") for i in range(0, len(bodies), 100)]
        real = DynamoTimerStore(client=real_client("dynamodb", self.stub))
        state: dict[str, Any] = {}

        def reset() -> None:
            state["fake"] = DynamoTimerStore(client=hub_dynamo())
            self.stub.fakes["dynamodb"] = hub_dynamo()

        paths = {"fakes": Path(lambda: setattr(watchdog, "_timers", state["fake"]), False),
                 "real clients": Path(lambda: setattr(watchdog, "_timers", real), True)}

        def lambda_handler(batch: dict) -> Any:
            return watchdog.lambda_handler(batch, ctx)

        reset()
        self._config_reads(lambda: [(p.prepare(), [lambda_handler(b) for b in batches[:2]]) for p in paths.values()])
        reset()
        self.measure("(e) sla_watchdog (arming)", "domain event", lambda_handler, paths, batches, 2, _no_failures,
                     len(bodies), reset=reset)


def _same_tables(fake: FakeDynamo, wired: FakeDynamo) -> None:
    """The keys of every table and the number of stream records must match between the two paths."""
    for table, items in fake.tables.items():
        if set(items) != set(wired.tables[table]):
            raise RuntimeError(f"{table}: the real-client path wrote other items than the fake path")
    if len(fake.stream_records) != len(wired.stream_records):
        raise RuntimeError("the real-client path produced another stream than the fake path")


def figures_of(results: list[Measured], webhook_events: int) -> tuple[list[Figure], list[str]]:
    figures, details = [], []
    total_fake = total_real = total_calls = 0.0
    for m in results:
        calls = sum(m.calls.values())
        per_event = calls / m.events
        extra_us = (m.real_s - m.fake_s) * 1e6
        per_call = f"{extra_us / per_event:.0f} µs of botocore per call" if per_event else "no AWS call"
        share = m.events / webhook_events  # this function's events per webhook event
        total_fake += m.fake_s * share
        total_real += m.real_s * share
        total_calls += per_event * share
        figures.append(Figure(
            "real_clients", f"{m.function}: CPU per {m.unit}, real boto3 clients", 1 / m.real_s, "events/s/core",
            anchor=1 / m.fake_s, anchor_unit="events/s/core", anchor_label="fakes", ratio=m.fake_s / m.real_s,
            note=f"{m.real_s * 1e6:.0f} µs with real clients vs {m.fake_s * 1e6:.0f} µs on fakes (anchor column): "
                 f"+{extra_us:.0f} µs per {m.unit}, {per_call}; {per_event:.3g} AWS calls per {m.unit} ("
                 + (", ".join(f"{op} {n / m.events:.3g}" for op, n in sorted(m.calls.items())) or "none")
                 + f"); {m.events:,} of them; the wire stub's own {m.stub_s * 1e6:.0f} µs per {m.unit} taken out"))
        figures.append(Figure("real_clients", f"{m.function}: AWS calls per {m.unit}", per_event, "calls",
                              note=", ".join(f"{op} {n / m.events:.3g}" for op, n in sorted(m.calls.items()))
                              or "none while every delivery succeeds"))
    figures.append(Figure(
        "real_clients", "whole flow: hub CPU per webhook event, real clients", total_real * 1e6, "µs",
        anchor=total_fake * 1e6, anchor_unit="µs", anchor_label="fakes", ratio=total_real / total_fake,
        note="(a)+(b)+(c)+(d)+(e), each weighted by its events per webhook event; anchor column = the same on fakes"))
    figures.append(Figure(
        "real_clients", "whole flow: AWS calls per webhook event", total_calls, "calls",
        note="all five functions, each weighted by its events per webhook event; botocore's CPU for them is the "
             f"{(total_real - total_fake) * 1e6:,.0f} µs between the two lines above"))
    for m in results:
        details.append(f"{m.function}: per {m.unit}: fakes {m.fake_s * 1e6:.1f} µs, real clients "
                       f"{m.real_s * 1e6:.1f} µs, stub (excluded) {m.stub_s * 1e6:.1f} µs; calls "
                       + (", ".join(f"{op} {n:,}" for op, n in sorted(m.calls.items())) or "none")
                       + f" over {m.events:,} of them")
    return figures, details


def run(events: int = 1000, repeats: int = 3) -> list[Figure]:
    bench = Bench(events, repeats)
    bodies, attrs = bench.ingest()
    dynamo = bench.mapping(bodies, attrs)
    entries = bench.publishing(dynamo)
    bench.dispatch(entries)
    bench.sla_timers(entries)
    figures, details = figures_of(bench.results, len(bodies))
    details.append("configuration reads over real clients (Powertools cache, 60 s): "
                   + ", ".join(f"{op} {n}" for op, n in bench.config_calls.items())
                   + " for the whole run, all on first use (cold) in each function")
    run.details = details  # type: ignore[attr-defined]
    return figures


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here (bench.run_all)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    figures = run(args.events, args.repeats)
    for line in getattr(run, "details", []):
        print("  " + line)
    print_figures(f"bench.real_clients: CPU per event, real boto3 clients vs fakes (per-chunk best of "
                  f"{args.repeats}; took {time.perf_counter() - t0:.0f} s)", figures)
    dump_json(args.json, "real_clients", figures, getattr(run, "details", []), time.perf_counter() - t0)
    return figures


if __name__ == "__main__":
    main()
