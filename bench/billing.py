"""List prices, the bill of one flow, and the traffic model that sizes its batches (used by bench.cost).

Prices: us-east-1 on-demand list prices (USD), arm64 Lambda. Every item of a Bill is a billed
request or unit counted from what the real code did; the few figures that are a model rather than
a count (batch sizes at a given rate, waits per AWS call, execution environments) are named here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench._support import ACCOUNT, REGION, physical, topology

PRICE = {
    "ddb_wru": 0.625e-6, "ddb_rru": 0.125e-6,
    "lambda_request": 0.20e-6, "lambda_gb_s": 0.0000133334,  # arm64
    "sqs_request": 0.40e-6, "eventbridge_event": 1.00e-6, "http_api_request": 1.00e-6, "kms_request": 3.00e-6,
    "logs_ingest_gb": 0.50, "logs_store_gb_month": 0.03,  # CloudWatch Logs, standard class
    "secrets_api_call": 0.05 / 10_000, "secret_month": 0.40,  # Secrets Manager
    "ssm_get_standard": 0.0,  # SSM standard parameters at standard throughput: no charge per API call
    "data_out_gb": 0.09,  # data transfer out to the internet, first 10 TB/month
    "scheduler_invocation": 1.00e-6,  # EventBridge Scheduler (the first 14 M a month are free: not assumed)
}

# Assumed AWS-side latencies (ms) that a Lambda spends waiting, per call. Lambda duration =
# measured CPU (hub + botocore) x (1769 MB / memory) (Lambda's CPU share; this machine is not
# faster than a Lambda core, so this errs high) + these waits + 1 ms platform overhead, billed per ms.
LATENCY_MS = {"SendMessage": 8, "SendMessageBatch": 10, "GetItem": 4, "PutItem": 6, "UpdateItem": 6,
              "TransactWriteItems": 12, "PutEvents": 15, "BatchWriteItem": 10, "Query": 6,
              "GetQueueAttributes": 5, "http_post": 50}

SECONDS_PER_MONTH = 30 * 86_400
SQS_POLLERS = 5  # Lambda's SQS event source polls a standard queue with 5 concurrent long polls
POLL_CYCLE_S = 0.1  # with no batching window, a poller's receive returns what arrived in about this long
IDLE_POLLS_PER_MINUTE = 3  # per poller on an empty queue: 20 s long polls


@dataclass(frozen=True)
class Traffic:
    """A steady rate of webhook events and the batches Lambda's pollers form at it.

    A poller gathers for the batching window (or one poll cycle without one), and the queue's
    messages are spread over SQS_POLLERS pollers (one per shard on a stream, one shard below
    1,000 writes/s), so a batch holds rate x window / pollers messages, at least 1, at most the
    configured batch size."""

    name: str
    events_per_s: float
    subscriber_window_s: float | None = None  # a what-if: the subscriber queues' batching window

    def batch(self, messages_per_s: float, batch_size: int, window_s: float, pollers: int = SQS_POLLERS) -> float:
        gathered = messages_per_s * max(window_s, POLL_CYCLE_S) / pollers
        return min(float(batch_size), max(1.0, gathered))

    @property
    def events_per_month(self) -> float:
        return self.events_per_s * SECONDS_PER_MONTH


def batch_bounds(n: int, average: float) -> list[tuple[int, int]]:
    """(start, end) of consecutive batches over n items whose sizes average `average` (floors and ceilings)."""
    bounds, start, carry = [], 0, 0.0
    while start < n:
        carry += average
        size = min(max(1, int(carry)), n - start)
        carry -= size
        bounds.append((start, start + size))
        start += size
    return bounds


def gsi_tables() -> dict[str, list[tuple[tuple[str, str | None], tuple[str, ...] | None, str]]]:
    """Physical table -> its GSIs: (key attributes, projected attributes (None: ALL), the table's key).
    Every write that carries an index's keys is copied into it and billed again, by the size of what the
    index holds (the whole item for ALL; the keys and the projected attributes otherwise)."""
    return {physical(t.name): [((i.partition_key, i.sort_key), i.projection, t.partition_key) for i in t.indexes]
            for t in topology().tables if t.indexes}


def chunks64k(size: int) -> int:
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
    log_bytes: Counter = field(default_factory=Counter)  # what the functions print, per function
    egress_bytes: Counter = field(default_factory=Counter)  # bytes out to the internet, by kind
    config_reads: dict = field(default_factory=dict)  # function -> (SSM names, secret names) a cold start reads
    extras: dict = field(default_factory=dict)  # US$ for this flow's events of the items bench.cost_overheads adds
    notes: dict = field(default_factory=dict)  # how each of those was got
    batch_items: Counter = field(default_factory=Counter)  # messages / records handed to each function

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
            **self.extras,
        }

    def fanout_per_million(self) -> dict[str, float]:
        """US$/M of delivering to each subscriber: its queue's SQS requests, its share of dispatcher time,
        the bytes pushed to it."""
        out: dict[str, float] = {}
        queues = {k.split()[1] for k in self.sqs_requests if "sub-" in k}
        total_sub = sum(v for k, v in self.sqs_requests.items() if "sub-" in k) or 1
        lam = (self.lambda_invocations["dispatcher"] * PRICE["lambda_request"] +
               self.lambda_gb_s["dispatcher"] * PRICE["lambda_gb_s"])
        for q in sorted(queues):
            reqs = sum(v for k, v in self.sqs_requests.items() if k.split()[1] == q)
            egress = self.egress_bytes[f"push {q}"] / 1e9 * PRICE["data_out_gb"]
            out[q] = (reqs * PRICE["sqs_request"] + lam * reqs / total_sub + egress) / self.events * 1e6
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
        if c.op in ("GetItem", "Query", "Scan"):
            size = item_size_bytes(c.item) if c.item else 0
            bill.rru[f"{c.op} {table}"] += max(1, math.ceil(size / 4096)) * (1 if c.consistent else 0.5)
        elif c.op in ("PutItem", "BatchPut", "UpdateItem", "DeleteItem"):
            kind = f"{c.op} {table}" + ("" if c.ok else " (failed condition)")
            bill.wru[kind] += wu(c.item, c.old)
        elif c.op == "TransactPut":
            kind = f"TransactWriteItems put {table}" + ("" if c.ok else " (cancelled)")
            bill.wru[kind] += 2 * wu(c.item, c.old)
        if c.op in ("PutItem", "BatchPut", "UpdateItem", "TransactPut") and c.ok:
            for keys, projection, table_key in indexes.get(c.table, ()):
                if all(k in c.item for k in keys if k):
                    held = c.item if projection is None else {
                        name: value for name, value in c.item.items()
                        if name in (table_key, *keys) or name in projection}
                    bill.wru[f"GSI write {table}"] += wu(held)


def bill_sqs_batches(bill: Bill, queue: str, bodies: list[str], average: float) -> list[tuple[int, int]]:
    """ReceiveMessage + DeleteMessageBatch per batch (batches averaging `average`); returns the batches."""
    bounds = batch_bounds(len(bodies), average)
    for start, end in bounds:
        bill.sqs_requests[f"ReceiveMessage {queue}"] += chunks64k(sum(len(b.encode()) for b in bodies[start:end]))
        bill.sqs_requests[f"DeleteMessageBatch {queue}"] += 1
    return bounds


def matches(pattern: dict, event: dict) -> bool:
    """EventBridge pattern matching for the forms the subscriber patterns use (value lists, nesting)."""
    for key, want in pattern.items():
        have = event.get(key)
        if isinstance(want, dict):
            if not isinstance(have, dict) or not matches(want, have):
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


class LogCapture:
    """fd 1 -> a temp file for the block: the log bytes a function writes to CloudWatch Logs."""

    def __enter__(self) -> LogCapture:
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


def timed(fn, *args, stub: Any = None) -> tuple[Any, float]:
    """(reply, CPU s) of fn(*args); with a bench.wire stub, its own CPU taken out."""
    stub0 = stub.stub_cpu_s if stub is not None else 0.0
    t0 = time.process_time()
    reply = fn(*args)
    elapsed = time.process_time() - t0
    return reply, elapsed - ((stub.stub_cpu_s - stub0) if stub is not None else 0.0)
