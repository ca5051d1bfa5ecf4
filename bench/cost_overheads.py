"""What a per-event cost leaves out: logs, configuration reads, egress, scheduled runs, idle polls, secrets.

bench.cost bills the requests and units the real code makes per webhook event. These are the rest
of the bill, added to the same total (each is an item of its own):
- CloudWatch Logs: the bytes each function printed in the run (measured: its Logger lines and EMF
  metric documents), plus Lambda's own platform records per invocation (JSON log format: a
  `platform.start` and a `platform.report` record), plus the HTTP API's access log line per
  request (the stack's format, infra/cdk/constructs/ingest.py); ingestion and one month of storage
  (the stack's retention), billed on the raw bytes (CloudWatch stores them compressed: errs high).
- Configuration reads: every execution environment reads each SSM parameter and secret it uses
  once per cache period (60 s, orderhub.settings); the names a cold start reads are counted per
  function, environments = the function's concurrency at the traffic's rate (Little's law: invocations/s
  x mean billed duration; at least 1). Secrets Manager bills each read and each secret per month;
  SSM standard parameters are not billed per read.
- Egress: the bytes of every subscriber push (body + headers) and of every HTTP API reply,
  at the data-transfer-out price.
- Scheduled runs: hub_health, sla_watchdog (sla-watch), notifier (alert digest) and channel_poller
  run every 5 minutes whatever the traffic: their invocations, CPU (measured here, real clients),
  AWS calls and log lines are a fixed monthly cost, given per million events at the traffic's monthly
  volume. channel_poller is modelled (platform calls need the platforms): see POLLER_*.
- Idle long polls: a queue with a Lambda trigger that gets no messages is still long-polled by
  5 pollers, 3 receives a minute each.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import REPO
from bench._support import (
    FakeLambdaContext,
    FakeSQS,
    apply_environment,
    physical,
    quiet_stdout,
    topology,
)
from bench.billing import (
    IDLE_POLLS_PER_MINUTE,
    LATENCY_MS,
    PRICE,
    SECONDS_PER_MONTH,
    SQS_POLLERS,
    Bill,
    LogCapture,
    Traffic,
    timed,
)
from bench.fake_dynamodb import hub_dynamo

RUNS_PER_MONTH = SECONDS_PER_MONTH // 300  # every 5 minutes
LOG_RETENTION_MONTHS = 1  # infra/cdk/naming.py LOG_RETENTION = ONE_MONTH
# channel_poller, per shop and run, in steady state (no platform here): the re-read overlap window
# and the new window, one page each; the shop's watermark read and moved.
POLLER_PLATFORM_CALLS = 2
POLLER_PLATFORM_WAIT_MS = 200
POLLER_CPU_MS_PER_SHOP = 5.0


def platform_log_bytes() -> int:
    """Bytes of Lambda's own records per invocation in the JSON log format (start + report)."""
    request_id = "0f3b6a52-6b1e-4b7e-9d43-1c2b3a4d5e6f"
    start = {"time": "2026-11-11T00:00:00.000Z", "type": "platform.start",
             "record": {"requestId": request_id, "version": "$LATEST"}}
    report = {"time": "2026-11-11T00:00:00.123Z", "type": "platform.report",
              "record": {"requestId": request_id, "metrics": {"durationMs": 123.45, "billedDurationMs": 124,
                                                              "memorySizeMB": 512, "maxMemoryUsedMB": 98},
                         "status": "success"}}
    return sum(len(json.dumps(r, separators=(",", ":"))) + 1 for r in (start, report))


def access_log_bytes() -> int:
    """One HTTP API access log line in the stack's format, with typical values."""
    source = (REPO / "infra" / "cdk" / "constructs" / "ingest.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    fields = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", "") == "_ACCESS_LOG_FIELDS" for t in node.targets))
    sample = {"requestId": "Ab1CdEfGhIjKlMn=", "requestTime": "11/Nov/2026:00:00:00 +0000",
              "sourceIp": "203.0.113.10", "routeKey": "POST /webhooks/mall", "status": "200",
              "responseLength": "18", "latencyMs": "23", "integrationLatencyMs": "21", "integrationError": "-"}
    return len("{" + ",".join(f'"{k}":"{sample.get(k, "-")}"' for k in fields) + "}") + 1


def fresh_config_cache() -> None:
    """Forget cached configuration, as a new execution environment starts without it."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    from orderhub import settings

    for provider in DEFAULT_PROVIDERS.values():
        provider.clear_cache()
    settings._built.clear()


@dataclass
class ScheduledRun:
    function: str
    memory_mb: int
    cpu_s: float
    calls: Counter = field(default_factory=Counter)
    log_bytes: int = 0
    wait_ms: float = 0.0
    note: str = ""


def measure_scheduled(config: Any) -> list[ScheduledRun]:
    """One run of each scheduled function on an idle hub (real clients, AWS answered under botocore)."""
    from bench.wire import WireStub, real_client

    stub = WireStub({"sqs": FakeSQS(), "dynamodb": hub_dynamo()})
    aws = importlib.import_module("orderhub.aws")
    clients = {service: real_client(service, stub) for service in ("sqs", "dynamodb")}
    out = []
    event = {"schedule": "bench", "scheduled_time": "2026-11-11T00:05:00+00:00"}
    saved = aws.client
    try:
        aws.client = lambda service: clients[service]
        for name in ("hub_health", "sla_watchdog", "notifier"):
            apply_environment(name, config)
            handler = importlib.import_module(f"functions.{name}.handler")
            if hasattr(handler, "client"):
                handler.client = aws.client
            for store in ("_orders", "_exceptions", "_timers", "_store"):
                if hasattr(handler, store) and hasattr(getattr(handler, store), "_client"):
                    getattr(handler, store)._client = clients["dynamodb"]
            ctx = FakeLambdaContext(physical(name), topology().function(name).memory_mb)
            with quiet_stdout():
                handler.lambda_handler(dict(event), ctx)  # warm: imports, first client use
            stub.reset_counts()
            with LogCapture() as cap:
                _, cpu_s = timed(handler.lambda_handler, dict(event), ctx, stub=stub)
            calls = Counter(stub.calls)
            wait = sum(LATENCY_MS.get(op.split()[-1], 5) * n for op, n in calls.items())
            out.append(ScheduledRun(name, ctx.memory_limit_in_mb, cpu_s, calls, cap.bytes, wait,
                                    "measured, idle hub"))
    finally:
        aws.client = saved
    out.append(modelled_poller(config))
    return out


def modelled_poller(config: Any) -> ScheduledRun:
    """channel_poller: its shops from the configuration, POLLER_* per shop."""
    shops = 0
    for doc in config.parameter_documents()[1].values():  # a pulled channel's shops are in its secret
        try:
            shops += len(json.loads(doc).get("options", {}).get("shops", []))
        except (ValueError, AttributeError):
            continue
    calls = Counter({"dynamodb GetItem": shops, "dynamodb UpdateItem": shops,
                     "platform HTTP (not AWS)": POLLER_PLATFORM_CALLS * shops})
    wait = shops * (LATENCY_MS["GetItem"] + LATENCY_MS["UpdateItem"] + POLLER_PLATFORM_CALLS * POLLER_PLATFORM_WAIT_MS)
    return ScheduledRun("channel_poller", topology().function("channel_poller").memory_mb,
                        shops * POLLER_CPU_MS_PER_SHOP / 1000, calls, 400 * shops, wait,
                        f"modelled: {shops} shops x ({POLLER_PLATFORM_CALLS} platform calls at "
                        f"{POLLER_PLATFORM_WAIT_MS} ms, watermark GetItem + UpdateItem, "
                        f"{POLLER_CPU_MS_PER_SHOP:g} ms CPU)")


def scheduled_monthly(runs: list[ScheduledRun]) -> dict[str, float]:
    """US$ a month of the scheduled runs, by item."""
    lam = req = ddb = sqs = logs = 0.0
    for r in runs:
        ms = math.ceil(r.cpu_s * 1000 * 1769 / r.memory_mb + r.wait_ms + 1)
        lam += RUNS_PER_MONTH * r.memory_mb / 1024 * ms / 1000 * PRICE["lambda_gb_s"]
        req += RUNS_PER_MONTH * (PRICE["lambda_request"] + PRICE["scheduler_invocation"])
        for op, n in r.calls.items():
            if op.startswith("dynamodb"):
                unit = PRICE["ddb_rru"] if op.split()[-1] in ("GetItem", "Query", "Scan") else PRICE["ddb_wru"]
                ddb += RUNS_PER_MONTH * n * unit
            elif op.startswith("sqs"):
                sqs += RUNS_PER_MONTH * n * PRICE["sqs_request"]
        logs += RUNS_PER_MONTH * (r.log_bytes + platform_log_bytes()) / 1e9 * _logs_gb_price()
    return {"Lambda GB-s": lam, "Lambda + Scheduler requests": req, "DynamoDB": ddb, "SQS": sqs,
            "CloudWatch Logs": logs}


def _logs_gb_price() -> float:
    return PRICE["logs_ingest_gb"] + PRICE["logs_store_gb_month"] * LOG_RETENTION_MONTHS


def idle_queues(bill: Bill) -> list[str]:
    """Queues with a Lambda trigger that got no message in the flow (still long-polled)."""
    triggered = {t.queue for f in topology().functions for t in f.triggers if hasattr(t, "queue")}
    busy = {key.split()[1] for key in bill.sqs_requests}
    return sorted(q for q in triggered if q not in busy)


def concurrency(bill: Bill, fn: str, traffic: Traffic) -> float:
    """Busy execution environments of fn at the traffic's rate (invocations/s x mean billed s)."""
    invocations = bill.lambda_invocations[fn]
    if not invocations:
        return 0.0
    per_s = invocations / bill.events * traffic.events_per_s
    mean_s = sum(bill.lambda_ms[fn]) / len(bill.lambda_ms[fn]) / 1000
    return per_s * mean_s


def add_overheads(bill: Bill, traffic: Traffic, scheduled: list[ScheduledRun], secrets_total: int) -> dict[str, str]:
    """Put the left-out items into bill.extras (US$ for the bill's events); returns how each was got."""
    share = bill.events / traffic.events_per_month  # this run's share of a month's traffic
    invocations = sum(bill.lambda_invocations.values())
    platform = invocations * platform_log_bytes()
    access = bill.http_api * access_log_bytes()
    printed = sum(bill.log_bytes.values())
    bill.extras["CloudWatch Logs (functions, platform, API access)"] = (printed + platform + access) / 1e9 * \
        _logs_gb_price()

    reads_per_month = 0.0
    environments = {}
    for fn, (_params, secrets) in bill.config_reads.items():
        envs = max(1, math.ceil(concurrency(bill, fn, traffic)))
        environments[fn] = envs
        reads_per_month += envs * len(secrets) * SECONDS_PER_MONTH / 60
    bill.extras["Secrets Manager (reads per environment per minute, secrets a month)"] = share * (
        reads_per_month * PRICE["secrets_api_call"] + secrets_total * PRICE["secret_month"])

    bill.extras["Data transfer out (pushes, API replies)"] = sum(bill.egress_bytes.values()) / 1e9 * \
        PRICE["data_out_gb"]

    monthly = scheduled_monthly(scheduled)
    bill.extras["Scheduled runs (4 functions every 5 min, fixed)"] = share * sum(monthly.values())
    idle = idle_queues(bill)
    idle_polls = len(idle) * SQS_POLLERS * IDLE_POLLS_PER_MINUTE * SECONDS_PER_MONTH / 60
    bill.extras["Idle long polls (fixed)"] = share * idle_polls * PRICE["sqs_request"]
    return {
        "logs": f"{printed / bill.events:.0f} B printed (" + ", ".join(
                    f"{fn} {n / bill.events:.0f} B" for fn, n in bill.log_bytes.items())
                + f") + {platform / bill.events:.0f} B platform records ({platform_log_bytes()} B per invocation)"
                  f" + {access / bill.events:.0f} B access log per event",
        "config": "environments at this rate " + ", ".join(f"{fn} {n}" for fn, n in environments.items())
                  + "; cold-start reads (SSM, secrets) " + ", ".join(
                      f"{fn} {len(p)}+{len(s)}" for fn, (p, s) in bill.config_reads.items())
                  + f"; {secrets_total} secrets stored",
        "egress": ", ".join(f"{k} {v / bill.events:.0f} B" for k, v in sorted(bill.egress_bytes.items()))
                  + " per event",
        "scheduled": f"${sum(monthly.values()):.2f} a month (" + ", ".join(
            f"{k} ${v:.2f}" for k, v in monthly.items()) + ")",
        "idle": f"{len(idle)} idle triggered queues ({', '.join(idle)}): {idle_polls:,.0f} receives a month",
    }
