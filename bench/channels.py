"""Hub CPU per event for every channel: ingest and status mapping, AWS calls answered in-process.

    python -m bench.channels [--rounds 60] [--repeats 3]

Push channels: every request of the channel's stories (events/<channel>/stories), signed with the
platform's own recipe (the module's `client_request`), as API Gateway HTTP API v2.0 events
through functions.webhook_ingest.handler; then the intake messages it produced, in story order,
in SQS batches of 10 through functions.status_mapper.handler on a fresh in-memory DynamoDB fake
per round (so each round maps first sightings and repeats exactly as the stories have them).
Pulled channels (taobao, jd, pdd): orders as the fake platform serves them (infra.standins.platforms), as
the poller enqueues them, through the status mapper.

Figures are CPU per webhook request / intake message (a Douyin push may carry several
messages; the figure is per request, the harder measure). Goal: >= 5,000 per second per core,
each channel, ingest and mapping. ANCHOR: the `mall` channel measured in the same run (the
skeleton's channel, whose figures bench.cpu compares with a typical Powertools stack).
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any

from bench._support import (
    FakeLambdaContext,
    FakeSQS,
    Figure,
    apigw_v2_event,
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
from bench.fake_dynamodb import hub_dynamo

GOAL = 5000
PUSH_CHANNELS = ("mall", "douyin", "youzan", "shopify", "woocommerce", "wms", "kuaidi100")
PULL_CHANNELS = ("taobao", "jd", "pdd")
ANCHOR_CHANNEL = "mall"


def _push_requests(config, channel: str) -> list[tuple[str, dict[str, Any]]]:
    """(channel, API Gateway event) for every request of the channel's stories, in story order."""
    from infra.demo.traffic import load_channel_stories, signed_request

    out = []
    for story in load_channel_stories(channel):
        for request in story.requests:
            headers, body = signed_request(config, request)
            out.append((request.channel, apigw_v2_event(body, headers, channel=request.channel)))
    return out


def _pull_messages(channel: str, count: int) -> list[str]:
    from datetime import UTC, datetime

    from infra.standins.platforms import generate_orders
    from orderhub.models.envelope import IntakeMessage

    orders = generate_orders(channel, count, datetime(2026, 11, 20, tzinfo=UTC), seed=5)
    bodies = []
    for i, order in enumerate(orders):
        raw = order[1] if isinstance(order, tuple) else order
        body = raw if isinstance(raw, bytes) else __import__("json").dumps(raw, ensure_ascii=False).encode()
        bodies.append(IntakeMessage.wrap(channel, "2026-11-20T08:00:00.000+00:00", f"poll:{i}", "", {},
                                         body).model_dump_json())
    return bodies


def _cpu(fn, items: list[Any], repeats: int) -> float:
    best = float("inf")
    with quiet_stdout():
        for _ in range(repeats):
            t0 = time.process_time()
            for x in items:
                fn(x)
            best = min(best, time.process_time() - t0)
    return best


def measure(rounds: int, repeats: int, channels: tuple[str, ...]) -> dict[str, tuple[float | None, float, int]]:
    """channel -> (ingest s/request or None for pulled, mapping s/message, messages per round)."""
    config = hub_config()
    env = apply_environment("webhook_ingest", config)
    install_config_stubs(config)
    ingest = importlib.import_module("functions.webhook_ingest.handler")
    from orderhub.intake import IntakeQueue

    sqs = FakeSQS()
    ingest._queue = IntakeQueue(env["INTAKE_QUEUE_URL"], client=sqs)
    ingest_ctx = FakeLambdaContext(physical("webhook_ingest"), 512)

    apply_environment("status_mapper", config)
    mapper = importlib.import_module("functions.status_mapper.handler")
    from orderhub.store.health import InMemoryChannelHealth
    from orderhub.store.ledger import DynamoLedger
    from orderhub.store.orders import DynamoOrderStore

    mapper._health = InMemoryChannelHealth()
    mapper_ctx = FakeLambdaContext(physical("status_mapper"), 512)

    results: dict[str, tuple[float | None, float, int]] = {}
    for channel in channels:
        if channel in PULL_CHANNELS:
            bodies, attrs = _pull_messages(channel, 200), None
            ingest_s = None
        else:
            requests = _push_requests(config, channel)
            events = [e for _, e in requests] * rounds

            def post(event: dict[str, Any], channel: str = channel) -> None:
                reply = ingest.lambda_handler(event, ingest_ctx)
                if reply["statusCode"] >= 300:
                    raise RuntimeError(f"{channel}: ingest replied {reply}")

            sqs.sent.clear()
            with quiet_stdout():  # logs and EMF metrics still written, as in the measured runs, to /dev/null
                for event in events[:len(requests)]:
                    post(event)  # warm-up, and the messages the mapper gets
            bodies = [m["MessageBody"] for m in sqs.sent]
            attrs = [message_attributes_for_lambda(m.get("MessageAttributes") or {}) for m in sqs.sent]
            sqs.keep = False
            ingest_s = _cpu(post, events, repeats) / len(events)
            sqs.keep = True
        batches = [sqs_event(bodies[i:i + 10], "intake", attrs[i:i + 10] if attrs else None)
                   for i in range(0, len(bodies), 10)]
        pool = iter([hub_dynamo() for _ in range(rounds * repeats + 1)])

        def map_round(_: int, pool=pool, batches=batches, channel=channel) -> None:
            fake = next(pool)  # a fresh table set: the orders, their log and the payments ledger
            mapper._store, mapper._ledger = DynamoOrderStore(client=fake), DynamoLedger(client=fake)
            for batch in batches:
                reply = mapper.lambda_handler(batch, mapper_ctx)
                if reply.get("batchItemFailures"):
                    raise RuntimeError(f"{channel}: mapping failures {reply}")

        with quiet_stdout():
            map_round(0)  # warm-up
        mapping_s = _cpu(map_round, list(range(rounds)), repeats) / (rounds * len(bodies))
        results[channel] = (ingest_s, mapping_s, len(bodies))
    return results


def figures(results: dict[str, tuple[float | None, float, int]]) -> list[Figure]:
    anchor_ingest, anchor_mapping, _ = results[ANCHOR_CHANNEL]
    out = []
    for channel, (ingest_s, mapping_s, _) in results.items():
        for step, seconds, anchor in (("ingest", ingest_s, anchor_ingest), ("mapping", mapping_s, anchor_mapping)):
            if seconds is None:
                continue
            rate = 1 / seconds
            anchor_rate = 1 / anchor if anchor else None
            out.append(Figure("channels", f"{step}: {channel}", rate, "events/s/core", anchor=anchor_rate,
                              anchor_label=f"{ANCHOR_CHANNEL}, same run", goal=f">= {GOAL:,} events/s/core",
                              passed=rate >= GOAL, ratio=(rate / anchor_rate) if anchor_rate else None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels", default=",".join(PUSH_CHANNELS + PULL_CHANNELS))
    parser.add_argument("--json")
    args = parser.parse_args()
    started = time.perf_counter()
    channels = tuple(c for c in args.channels.split(",") if c)
    if ANCHOR_CHANNEL not in channels:
        channels = (ANCHOR_CHANNEL, *channels)
    results = measure(args.rounds, args.repeats, channels)
    figs = figures(results)
    print_figures("CPU per event, every channel (ingest per request, mapping per intake message)", figs)
    details = [f"{c}: {n} intake messages per round of its stories" for c, (_, _, n) in results.items()]
    if args.json:
        dump_json(args.json, "channels", figs, details, time.perf_counter() - started)


if __name__ == "__main__":
    main()
