"""Run every benchmark and rewrite bench/RESULTS.md with the figures.

    python -m bench.run_all            # what `make bench` runs: bounded (< ~5 min here), e2e on 300 sends
    python -m bench.run_all --full     # e2e on the full 2,000 sends (moto-bound: ~20-25 min on 2 cores)
    python -m bench.run_all --only cpu,cost

Each benchmark runs in its own interpreter (`python -m bench.<name> --json ...`), so module
state (handlers' module globals, Powertools singletons) never leaks from one into another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import REPO
from bench._support import Figure, fmt, machine, print_figures

RESULTS = REPO / "bench" / "RESULTS.md"
ORDER = ("imports", "cpu", "real_clients", "channels", "hostile", "cost", "payments", "poller", "dispatch", "alerts",
         "e2e")
FLOORS = ("e2e", "poller")  # benchmarks whose anchor is the least the work can cost, not a competing design


def _args_for(name: str, args: argparse.Namespace) -> list[str]:
    if name == "imports":
        return ["--runs", str(args.import_runs)]
    if name == "e2e":
        return ["--events", str(2000 if args.full else args.e2e_events)]
    return []


def run_one(name: str, extra: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [sys.executable, "-m", f"bench.{name}", *extra, "--json", out]
    print(f"\n$ {' '.join(shlex.quote(c) for c in cmd[1:])}", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "shared"), str(REPO)])}
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, check=False)  # noqa: S603 - our own modules
    elapsed = time.perf_counter() - started
    try:
        with open(out, encoding="utf-8") as fh:
            result = json.load(fh)
    except (OSError, json.JSONDecodeError):
        result = {"bench": name, "figures": [], "details": [], "error": f"exit code {proc.returncode}"}
    finally:
        Path(out).unlink(missing_ok=True)
    result["seconds"] = elapsed
    result["command"] = f"python -m bench.{name} {' '.join(extra)}".strip()
    return result


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _row(f: Figure) -> str:
    goal = []
    if f.ratio is not None:
        goal.append(f"{f.ratio:.2f}x {f.anchor_label or ('floor' if f.bench in FLOORS else 'anchor')}")
    if f.goal:
        goal.append(f"goal {f.goal}")
    anchor = fmt(f.anchor, f.anchor_unit or f.unit) if f.anchor is not None else "-"
    return f"| {f.name} | {fmt(f.value, f.unit)} | {anchor} | {'; '.join(goal) or '-'} | **{f.verdict}** |"


METHOD = """\
## What each figure means and how it was measured

All anchors are measured **in the same run, on this machine**: only the ratios and the goals
count, the absolute numbers are this 2-core shared machine's (about 3x slower than the research
machine of `local_perf.md`, and other engineers' jobs run on it at the same time).

**bench.imports** - cold import of `functions.<name>.handler`, each in a fresh interpreter with
the function's environment, `time.perf_counter()` around the import inside the process (so the
interpreter's own start is not in it; the process wall time minus an empty interpreter is shown
too). 7 rounds round-robin over baseline, the six handlers and the anchor after one warm-up
round, median. ANCHOR: `from aws_lambda_powertools import Logger, Metrics, Tracer` + the
`APIGatewayRestResolver` + `idempotent_function, DynamoDBPersistenceLayer`, imported the same
way. The anchor imports boto3 (Powertools idempotency does); the hub imports it at its first AWS
call of the same cold start, so each handler is measured with `import boto3` after it. GOAL: each
handler (+ boto3) <= 0.5 x anchor; the import alone is in the note. Also shown: boto3's import and
one client created after it (info: both sides create their clients at first use), and import +
first invocation with AWS faked in-process (the hub's own first-request cost: lazy channel
module, first validation, first log and EMF flush; boto3 client creation not included), and
`-X importtime` self time by package.

**bench.cpu** - CPU (`time.process_time`) per event of the real handlers, AWS calls answered
in-process: (a) `webhook_ingest.lambda_handler` on API Gateway HTTP API v2.0 events of signed
mall webhooks (SQS stubbed; configuration read through the hub's real path: Powertools
parameters with its cache, the providers on fake SSM/Secrets Manager clients); (b)
`status_mapper.lambda_handler` on SQS batches of 10 of exactly what (a) enqueued, the store on an
in-memory DynamoDB fake with real conditional semantics; (c) `event_publisher` on the stream
records (b) produced (information). Stream: `infra.demo.traffic.synthetic_mall_events` interleaved by
event time plus ~5 % resends. Logger and EMF output stay on and go to /dev/null. Measured in
chunks alternating ours/anchor; each chunk's best of the repeats, summed (drops chunks another
process disturbed). ANCHORS (`bench/anchors.py`): the same domain work, same payloads, same
domain code, through a typical Powertools stack: (a) `APIGatewayHttpResolver` route + the same
parameter reads + HMAC + `parser.parse(model=MallWebhook)` + SQS send; (b) `BatchProcessor` with
a pydantic record model (`body: Json[IntakeMessage]`) + `idempotent_function`
(`DynamoDBPersistenceLayer` on the fake) + GetItem + `TransactWriteItems` (order + event-log
item) with boto3's TypeSerializer/TypeDeserializer. GOAL: >= 5,000 events/s per core each.
The "each step alone" lines time every step of the handler separately (best of 3) to show
where the time goes. botocore's own work per AWS call is outside these figures, ours and the
anchor's alike: bench.real_clients puts it back.

**bench.real_clients** - the CPU of bench.cpu's path with real boto3 clients in the loop: each
function (webhook_ingest, status_mapper, event_publisher, dispatcher, sla_watchdog arming) runs the
same events twice, chunk by chunk alternating, on the plain-Python fakes and on real clients
configured as `orderhub.aws` configures the hub's, answered under botocore by a `before-send` hook
(`bench.wire`) that hands the serialised, signed request to the same fakes and returns an
`AWSResponse` that botocore's retry handler and parser handle as AWS's; the hook's own CPU is
measured and taken out. AWS calls per event are counted by botocore's `before-call` hook.
ANCHOR column: the same function on the fakes (bench.cpu's path). No goal (information).

**bench.hostile** - ingest and mapping CPU of hostile Shopify pushes beside the normal one (the
`orders/updated` push of a story, ~11 KB): the same push with 1,000 / 2,000 / 4,000 / 8,000
unknown top-level fields, and with one field nested 500 deep, signed as Shopify signs. Ingest
through the real handler; an accepted message mapped as a batch of one on a fresh table, on the
fakes and on real clients (bench.wire). A refused payload is measured as the cost of refusing it.
Best of 9 calls each. GOALS: 4,000 extra fields and 500-deep nesting <= 10x the normal payload;
per doubling of the fields the cost grows <= 2.5x (linear: at most 2; quadratic tends to 4).

**bench.cost** - the whole flow driven through the real code on real boto3 clients answered by
recording fakes (bench.wire: botocore's CPU is in the Lambda time), then billed at us-east-1
on-demand list prices (bench.billing). Write units from the sizes of the items actually written
(`orderhub.store.attributes.item_size_bytes`): 1 WRU per started KB of the larger of old and new
item, failed conditional writes included; 2 per KB per item in a transaction; a GSI declared in
the topology (projected ALL by the stack) bills each write again. Reads: 1 RRU per started 4 KB
(strongly consistent). Lambda: requests + GB-s at the topology's memory sizes (arm64), duration =
CPU measured here x 1769/memory (Lambda's CPU share) + assumed waits per AWS call (SQS 8 ms,
GetItem 4, PutItem/UpdateItem 6, TransactWriteItems 12, PutEvents 15, BatchWriteItem 10,
subscriber HTTP POST 50) + 1 ms. Batches as Lambda's pollers form them at a steady rate
(`bench.billing.Traffic`: a batch gathers rate x batching window, or a 0.1 s poll cycle without
one, over 5 pollers per queue or 1 per stream shard, at least 1, at most the configured size),
at 10 events/s (the goal's figure) and at the 11.11 peak of 300 events/s, each its own run of
both flows. SQS: per request per 64 KB (send; receive + DeleteMessageBatch per batch); stream
reads by Lambda are free. EventBridge: per entry; rule delivery to SQS is an SQS send. The SLA
watchdog hears every domain event and arms timers with BatchWriteItem (billed per item). KMS
(SSE-KMS on queues and tables): amortised by data-key caching (per 300 s per queue side and
table) at the rate. Added by `bench.cost_overheads`: CloudWatch Logs ingestion and a month's
storage of what each function printed in the run, Lambda's platform records per invocation and
the HTTP API's access log line per request; Secrets Manager reads (each execution environment
re-reads what a cold start read every 60 s; environments = concurrency at the rate) and secrets
stored; data transfer out (pushes, API replies); the four every-5-minute functions (three run
and measured on an idle hub, channel_poller modelled per shop) and idle long polls of triggered
queues that get nothing, as fixed monthly costs per million events at the rate's monthly volume.
ANCHOR: the same events through the common design (Powertools idempotency's real calls against
the fake, a two-item `TransactWriteItems`, PutEvents from the mapper), same subscribers, same
rate, same overheads. GOALS: <= 2 WU per status event, <= $3.50 per million webhook events at
10 events/s (everything above included).

**bench.channels** - the same per-event CPU as bench.cpu (real handlers, AWS answered in-process)
for every channel: each push channel's sample stories signed as its platform signs them, through
webhook_ingest, then their intake messages in SQS batches of 10 through status_mapper on a fresh
in-memory DynamoDB fake per round; pulled channels' orders as the fake platforms serve them,
through status_mapper. ANCHOR: the `mall` channel in the same run. GOAL: >= 5,000 events/s/core
for each channel, ingest and mapping.

**bench.payments** - money in. Per provider (WeChat Pay, Alipay), notifications built, encrypted and
signed by the local providers (`infra.standins.wechatpay`, `.alipay`) for mall orders the hub already
holds: every order paid, some refunded in part, WeChat Pay refunds reported abnormal then finished by
hand and refunds closed, Alipay trades closed by a full refund and trades finished; ~10 % delivered again
16-40 callbacks later (WeChat Pay signs each attempt anew, Alipay resends the same form). CPU:
webhook_ingest (authenticate: RSA-SHA256 verify; parse: AES-256-GCM decrypt or the form) and
status_mapper (order read, event log, the ledger's conditional PutItem on `payments`, order write) on
real boto3 clients (bench.wire, the stub's CPU taken out), batches of 10, chunks alternating with the
anchor, each chunk's best of the repeats; "each step alone" (best of 3 over 200 callbacks: the RSA
verification, AES-GCM, authenticate, parse, both functions on in-process fakes, the ledger's item and
PutItem) shows where the time goes. ANCHOR: the mall channel (HMAC-signed JSON, books nothing) on the
same path in the same run. GOAL: ingest + mapping >= 2,000 callbacks/s/core. Write units: from the items
written, as bench.cost counts them, except that an index write is billed on what the index copies
(`by-day` holds the keys and `r`; bench.billing bills every index as ALL), checked against
`orderhub.store.ledger.booking_write_units` for every record booked; per intake message, first
deliveries and resends apart; a redelivery that reaches the ledger (a crash between the ledger and order
writes) by booking every callback's records a second time. ANCHOR, on the same fakes with the same
items: the callback made idempotent the common way, Powertools `idempotent_function`
(DynamoDBPersistenceLayer: in-progress PutItem + completion UpdateItem, keyed by the notification, kept
26 h to outlive the providers' resends) around a plain PutItem of each ledger item, as the ledger of the
same mapper. GOAL: <= 2 write units per ledger record booked (table + index). Cost: both providers'
callbacks interleaved, billed as bench.cost bills (same prices and model; batches at 10 callbacks/s and
at a 300/s peak, each its own mapper run; the ingest half is identical and runs once): HTTP API, Lambda
requests and GB-s, SQS, DynamoDB writes and reads with the index, Secrets Manager reads per execution
environment, CloudWatch Logs, the replies' egress. The orders stream, domain events and fan-out behind
the mapper are bench.cost's (the same for both designs). No cost goal (information).

**bench.poller** - `orderhub.pull.poller.poll_shop` over real local HTTP against each fake
platform (infra.standins.platforms, started in this process: it checks signatures, tokens and timestamps as the
platform does), loaded with 10,000 orders of one shop modified within 30 minutes that end 5
minutes ago. One run from a watermark at the start of the 30 minutes (fresh in-memory watermark
store, the channel's real client with 100-order pages, the default `PollPolicy`: 10-minute overlap
re-read, settle, windows halved while page 1 says has_next, doubled under a quarter full), into an
in-memory `Sink` (orders count once drained). FLOOR, same run, same client and fake: one forward
page-through of the same 30 minutes as a single query (fetch_page 1..N until has_next is false; no
windows, no sink). 3 runs of each, alternating; rates from the best wall time, calls and orders from
the same runs. Orders/s = distinct orders arrived / wall s; orders per call counts duplicates
(window bounds are inclusive at both ends, so a window's first second is its predecessor's last).
No speed goal (information); GOAL: all 10,000 arrive in every run.

**bench.e2e** - the `LocalRuntime` (moto server, HTTP API, pollers, one worker process per
function) in a child process; this process sends signed webhooks over HTTP with 4 client
threads (~5 % resends), runs the downstream receiver (`infra.standins.downstream`) for the subscribers,
then checks DynamoDB over boto3: lost = distinct events without their log entry (plus missing
orders), duplicates applied = order versions beyond the log entries that changed the order,
final statuses vs an in-memory reference run of the same events, and the receiver's duplicate
`Idempotency-Key`s. REPLICA (information, not a lower bound), same run, same moto server with the runtime quiesced: only
the moto calls the flow needs (send; receive + delete per 10; GetItem + conditional PutItem of the real
log item + conditional PutItem of the real order item when the flow wrote it, and of the waybill links
it wrote; stream GetRecords; PutEvents with the real domain-event details, which moto routes to the
subscriber queues and to sla-events; receive + delete per 10 on each subscriber queue; on sla-events the
watermark GetItem per batch and a BatchWriteItem of the timers each event arms), by the same number of
sender threads and one consumer per poller, pipelined, with the runtime's idle-poll backoff. FLOOR (a
lower bound): the CPU seconds moto's process spent serving the replica's calls, less its empty polls
(costed by timing 200 empty receives afterwards): moto is one process under one GIL, so no schedule
of those calls takes less wall time on it.
GOAL: e2e time (first send -> runtime idle) <= 1.5 x floor.

**bench.dispatch** - `functions.dispatcher.handler.lambda_handler` on SQS batches of 10 real domain
events (synthetic mall orders merged by the hub's own code; SQS answered in-process, configuration
through Powertools parameters on fake SSM/Secrets Manager), pushing over loopback HTTP to
`infra.standins.downstream`'s receiver in a child process (signature, timestamp window and Idempotency-Key
checked). ANCHOR: the same events signed the same way, sent by a loop of `urllib.request.urlopen`
(a connection per push). FLOOR: pre-signed bodies POSTed with `http.client`, no handler. Best wall
time of the repeats; the receiver must get every event exactly once with a valid signature. No goal
for speed (information).

**bench.alerts** - a storm: WMS, ERP and CRM down while 667 domain events each arrive on their
queues over 30 virtual minutes and fail every attempt on the default backoff (30 s, 2, 10, 30 min;
5 attempts, then the DLQ): about 10,000 failed deliveries. The hub runs in-process
(`infra.local.inprocess`: moto, the real dispatcher, notifier and hub_health driven as Lambda drives
them, AWS's clock and the notifier's clock virtual, hub health and the alert digest every 5 minutes),
the ops group's robot is `infra.standins.robots`' stand-in. Counted: the robot's messages per problem (one
per subscriber) per 5-minute window. ANCHOR: one alert per failed delivery. GOAL: <= 1 alert per
subscriber per window.
"""


def write_results(results: list[dict], command: str, started: datetime, load_before: str, load_after: str,
                  path: Path = RESULTS) -> None:
    lines = ["# orderhub benchmark results", "",
             f"- date: {started:%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, {platform.platform()}",
             f"- load average (1/5/15 min) before / after: {load_before} -> {load_after} (shared machine)",
             f"- command: `{command}`",
             f"- took: {sum(r['seconds'] for r in results):.0f} s", "",
             "Written by `bench/run_all.py`; do not edit by hand (rerun it).", "",
             "| figure | value | anchor (same run) | ratio / goal | verdict |",
             "|---|---|---|---|---|"]
    for r in results:
        for f in (Figure(**d) for d in r["figures"]):
            if f.name.startswith("importtime profile"):
                continue
            lines.append(_row(f))
        if r.get("error"):
            lines.append(f"| bench.{r['bench']} | FAILED ({r['error']}) | - | - | **MISS** |")
    lines += ["", "## Details per benchmark", ""]
    for r in results:
        lines.append(f"### bench.{r['bench']}  (`{r['command']}`, {r['seconds']:.0f} s)")
        lines.append("")
        for f in (Figure(**d) for d in r["figures"]):
            if f.note:
                lines.append(f"- **{f.name}**: {f.note}")
        if r.get("details"):
            lines += ["", "```"]
            lines += [d.replace("; ", "\n    ") if ("each step alone" in d or "share of CPU" in d) else d
                      for d in r["details"]]
            lines.append("```")
        lines.append("")
    lines.append(METHOD)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="e2e on 2,000 sends")
    parser.add_argument("--e2e-events", type=int, default=300)
    parser.add_argument("--import-runs", type=int, default=7)
    parser.add_argument("--only", default=",".join(ORDER))
    parser.add_argument("--no-write", action="store_true", help="do not rewrite bench/RESULTS.md")
    parser.add_argument("--output", type=Path, default=RESULTS, help="write the results here instead")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    load_before = _load()
    command = "python -m bench.run_all" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    results = [run_one(name, _args_for(name, args)) for name in ORDER if name in args.only.split(",")]
    figures = [Figure(**d) for r in results for d in r["figures"] if not d["name"].startswith("importtime")]
    print_figures(f"bench.run_all: {len(figures)} figures, {sum(r['seconds'] for r in results):.0f} s", figures)
    if not args.no_write:
        write_results(results, command, started, load_before, _load(), args.output)
        print(f"\nwrote {args.output}")
    return 0 if all(not r.get("error") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
