"""Dispatcher throughput: domain events pushed to a local receiver by the real dispatcher handler.

    python -m bench.dispatch [--events 3000] [--repeats 3]

The receiver is infra.standins.downstream's (it checks each push's signature, timestamp window and
Idempotency-Key as a subscriber should), started in a child process on a free port, so the
receiving side does not share this interpreter. The events are real domain events: synthetic mall
orders merged in memory by the hub's own code, each change turned into its EventBridge event as
the subscriber queue holds it.

- OURS: `functions.dispatcher.handler.lambda_handler` on SQS batches of 10 records of queue
  `sub-wms` (SQS answered in-process; configuration through Powertools parameters on fake
  SSM / Secrets Manager clients), pushing over loopback HTTP: signed body, Idempotency-Key,
  separate connect/read timeouts, one kept connection.
- ANCHOR: the same events, signed and sent the same way, by a plain loop with
  `urllib.request.urlopen` (a new connection per push): what a dispatcher built on the standard
  library's one-call API does, and what the hub did before.
- FLOOR: `http.client` on one kept connection POSTing the pre-signed bodies: no handler, no
  signing, no batch bookkeeping; the least a push over this loopback costs.

Figures: pushes per second (wall, best of the repeats) beside the anchor and the floor, and
whether the receiver got every event exactly once with a valid signature. No goal for speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

from bench import REPO
from bench._support import (
    ACCOUNT,
    REGION,
    FakeLambdaContext,
    FakeSQS,
    Figure,
    apply_environment,
    dump_json,
    hub_config,
    install_config_stubs,
    physical,
    print_figures,
    quiet_stdout,
)

SUBSCRIBER = "wms"
_RECEIVER = """
import sys, time
from infra.standins.downstream import DownstreamReceiver
receiver = DownstreamReceiver({{"/wms/orderhub-events": {secret!r}}}).start()
print(receiver.port, flush=True)
for line in sys.stdin:
    inbox = receiver.inboxes["/wms/orderhub-events"]
    if line.strip() == "stats":
        print(f"{{inbox.delivered}} {{inbox.duplicates}} {{inbox.bad_signatures}}", flush=True)
    elif line.strip() == "reset":
        inbox.keys.clear(); inbox.events.clear(); inbox.attempts = 0
        print("ok", flush=True)
"""


class Receiver:
    """infra.standins.downstream's receiver in a child process; asked for its counts over stdin."""

    def __init__(self, secret: str) -> None:
        env_path = f"{REPO / 'shared'}:{REPO}"
        self._proc = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-c", _RECEIVER.format(secret=secret)], cwd=str(REPO), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={"PYTHONPATH": env_path, "PATH": ""})
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/wms/orderhub-events"

    def _ask(self, command: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._proc.stdout.readline().strip()

    def stats(self) -> tuple[int, int, int]:
        delivered, duplicates, bad = (int(x) for x in self._ask("stats").split())
        return delivered, duplicates, bad

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(5)


def domain_events(count: int) -> list[dict[str, Any]]:
    """`count` bus events of real order changes (the hub's merge of synthetic mall traffic)."""
    from infra.demo.traffic import synthetic_mall_events
    from orderhub.bus.domain_events import events_for_change
    from orderhub.channels import get_channel
    from orderhub.clock import SystemClock
    from orderhub.lifecycle.machine import apply_event, hub_order_id

    channel, orders, out = get_channel("mall"), {}, []
    clock = SystemClock()
    for raw in synthetic_mall_events(count):
        for event in channel.parse(json.dumps(raw).encode()):
            order_id = hub_order_id("mall", event.channel_order_id)
            old = orders.get(order_id)
            new, _ = apply_event(old, event, order_id)
            new = new.model_copy(update={"version": (old.version if old else 0) + 1,
                                         "updated_in_hub_at": clock.now().isoformat()})
            orders[order_id] = new
            for entry in events_for_change(old, new):
                out.append({"version": "0", "id": str(uuid.uuid4()), "detail-type": entry.detail_type,
                            "source": "orderhub.orders", "account": ACCOUNT, "time": new.updated_in_hub_at,
                            "region": REGION, "resources": [], "detail": json.loads(entry.detail.model_dump_json())})
            if len(out) >= count:
                return out[:count]
    return out


def sqs_batches(events: list[dict[str, Any]], queue: str) -> list[dict[str, Any]]:
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{physical(queue)}"
    batches = []
    for start in range(0, len(events), 10):
        batches.append({"Records": [{
            "messageId": str(uuid.uuid4()), "receiptHandle": f"rh-{start + i}", "body": json.dumps(e),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000", "SenderId": "A",
                           "ApproximateFirstReceiveTimestamp": "1700000000001"},
            "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs", "eventSourceARN": arn,
            "awsRegion": REGION} for i, e in enumerate(events[start:start + 10])]})
    return batches


def run_ours(batches: list[dict[str, Any]]) -> float:
    import functions.dispatcher.handler as handler

    context = FakeLambdaContext(physical("dispatcher"), 256)
    started = time.perf_counter()
    for batch in batches:
        reply = handler.lambda_handler(batch, context)
        assert not reply.get("batchItemFailures"), reply
    return time.perf_counter() - started


def run_anchor(events: list[dict[str, Any]], url: str, secret: str) -> float:
    from orderhub.dispatch.delivery import delivery_body, signature

    started = time.perf_counter()
    for event in events:
        key, body = delivery_body(event)
        timestamp = str(int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - loopback
            "Content-Type": "application/json", "Idempotency-Key": key, "X-OrderHub-Timestamp": timestamp,
            "X-OrderHub-Signature": signature(secret, timestamp, body)})
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback
            reply.read()
    return time.perf_counter() - started


def run_floor(events: list[dict[str, Any]], port: int, secret: str) -> float:
    import http.client

    from orderhub.dispatch.delivery import delivery_body, signature

    timestamp = str(int(time.time()))
    signed = []
    for event in events:
        key, body = delivery_body(event)
        signed.append((body, {"Content-Type": "application/json", "Idempotency-Key": key,
                              "X-OrderHub-Timestamp": timestamp,
                              "X-OrderHub-Signature": signature(secret, timestamp, body)}))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.perf_counter()
    for body, headers in signed:
        connection.request("POST", "/wms/orderhub-events", body=body, headers=headers)
        connection.getresponse().read()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    began = time.perf_counter()

    config = hub_config()
    sub = next(s for s in config.subscribers if s.name == SUBSCRIBER)
    receiver = Receiver(sub.signing_secret)
    config = config.model_copy(update={"subscribers": [
        s.model_copy(update={"endpoint": receiver.url}) if s.name == SUBSCRIBER else s for s in config.subscribers]})
    apply_environment("dispatcher", config)
    install_config_stubs(config)
    import orderhub.aws

    orderhub.aws.client = lambda service: FakeSQS()  # type: ignore[assignment]
    events = domain_events(args.events)
    batches = sqs_batches(events, f"sub-{SUBSCRIBER}")
    times: dict[str, list[float]] = {"ours": [], "anchor": [], "floor": []}
    checks: list[tuple[int, int, int]] = []
    try:
        with quiet_stdout():
            run_ours(batches[:5])  # warm: first configuration reads, first connection
        receiver.reset()
        for _ in range(args.repeats):
            for name in ("ours", "anchor", "floor"):
                receiver.reset()
                if name == "ours":
                    with quiet_stdout():
                        times[name].append(run_ours(batches))
                elif name == "anchor":
                    times[name].append(run_anchor(events, receiver.url, sub.signing_secret))
                else:
                    times[name].append(run_floor(events, receiver.port, sub.signing_secret))
                checks.append(receiver.stats())
    finally:
        receiver.close()

    rate = {name: len(events) / min(values) for name, values in times.items()}
    every_once = all(delivered == len(events) and duplicates == 0 and bad == 0
                     for delivered, duplicates, bad in checks)
    figures = [
        Figure("dispatch", "dispatcher pushes/s to a local receiver (vs urllib per push)", rate["ours"], "pushes/s",
               anchor=rate["anchor"], ratio=rate["ours"] / rate["anchor"],
               note=f"{len(events)} domain events in SQS batches of 10; best of {args.repeats}"),
        Figure("dispatch", "dispatcher pushes/s vs keep-alive floor", rate["ours"], "pushes/s",
               anchor=rate["floor"], ratio=rate["ours"] / rate["floor"],
               note="floor: pre-signed bodies POSTed on one kept connection, no handler"),
        Figure("dispatch", "receiver got every event once, signature valid", float(every_once), "",
               goal="every run", passed=every_once,
               note=f"(delivered, duplicate keys, bad signatures) per run: {checks}"),
    ]
    print_figures("dispatcher throughput", figures)
    details = [f"{name}: " + ", ".join(f"{len(events) / t:,.0f}/s" for t in values) for name, values in times.items()]
    dump_json(args.json, "dispatch", figures, details, time.perf_counter() - began)
    return 0 if every_once else 1


if __name__ == "__main__":
    raise SystemExit(main())
