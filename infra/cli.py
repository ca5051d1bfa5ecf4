"""`orderhub`: run the hub locally, and inspect / redrive dead-letter queues (locally or in AWS).

The DLQ commands are plain boto3: with normal credentials they act on AWS; pointed at a
running `orderhub run` (AWS_ENDPOINT_URL or --endpoint-url) they act on its embedded moto.
So do the other operator commands: `import` (a CSV file of order events, events/import/),
`replay` (re-feed logged requests, infra/replay.py) and `drift report` / `gaps report`
(infra/reports.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from infra.config import load_config

PREFIX_HELP = "stage from the config file (ORDERHUB_CONFIG, default config/local.toml)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderhub", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve the hub locally on moto until Ctrl-C / SIGTERM")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")), help="HTTP API port (env PORT)")
    run.add_argument("--moto-port", type=int, default=None, help="embedded AWS endpoint port (default: a free one)")
    run.add_argument("--config", type=Path, help="configuration file (default: ORDERHUB_CONFIG or config/local.toml)")
    run.set_defaults(func=_run)

    dlq = sub.add_parser("dlq", help="dead-letter queues: list, show, redrive, purge")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    for name, func, text in (("list", _dlq_list, "every DLQ of the stage: depth and oldest message age"),
                             ("show", _dlq_show, "the messages of one DLQ: when, how often tried, why parked"),
                             ("redrive", _dlq_redrive, "move messages from a DLQ back to its source queue"),
                             ("purge", _dlq_purge, "delete every message of one DLQ (asks first)")):
        p = dlq_sub.add_parser(name, help=text)
        p.add_argument("--config", type=Path, help=PREFIX_HELP)
        p.add_argument("--endpoint-url", default=None, help="AWS endpoint (default: env AWS_ENDPOINT_URL, else AWS)")
        p.set_defaults(func=func)
        if name != "list":
            p.add_argument("queue", help="the DLQ: logical name (sub-wms-dlq), physical name or URL")
        if name == "show":
            p.add_argument("--max", type=int, default=20, help="show at most this many messages (default 20)")
            p.add_argument("--body", action="store_true",
                           help="print whole bodies (intake bodies are channel payloads: they hold personal data)")
        if name == "redrive":
            p.add_argument("--max", type=int, default=None, help="move at most this many messages")
        if name == "purge":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    _operator_commands(sub)
    _exceptions_commands(sub)

    demo = sub.add_parser("demo", help="start the hub locally, play the sample traffic, print a summary")
    demo.set_defaults(func=_demo)

    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "demo":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return int(args.func(args) or 0)


def _config(args: argparse.Namespace) -> Any:
    return load_config(getattr(args, "config", None))


# --------------------------------------------------------------------------- run


def _run(args: argparse.Namespace) -> int:
    from infra.local.runtime import LocalRuntime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = _config(args)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    from infra.local.platforms import embedded_platforms, stop_platforms

    platforms, config = embedded_platforms(config, seed_orders=20)
    with LocalRuntime(config, port=args.port, moto_port=args.moto_port) as runtime:
        cold = runtime.warm()
        print(f"orderhub ({config.stage}) is serving", flush=True)
        print(f"  API            {runtime.api_url}")
        print(f"  embedded AWS   {runtime.endpoint_url}   (region {runtime.region})")
        for name, fake in platforms.items():
            print(f"  embedded {name:<6}{fake.url}   (pulled every 5 minutes)")
        for name, init in cold.items():
            print(f"  {name:<16} " + (f"init {init:.0f} ms" if isinstance(init, float) else f"INIT FAILED: {init}"))
        print("To use the AWS CLI / boto3 / `orderhub dlq` against it, in another shell:")
        print(f"  export AWS_ENDPOINT_URL={runtime.endpoint_url} AWS_DEFAULT_REGION={runtime.region} "
              f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
        print("Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(1.0):
                pass
        finally:
            stop_platforms(platforms)
        print("stopping…", flush=True)
    return 0


# --------------------------------------------------------------------------- dlq


def _sqs(args: argparse.Namespace) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)


def _stage_queues(sqs: Any, prefix: str) -> dict[str, str]:
    urls: dict[str, str] = {}
    for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix):
        for url in page.get("QueueUrls", []):
            urls[url.rsplit("/", 1)[-1]] = url
    return urls


def _stage(config: Any) -> tuple[str, set[str]]:
    """The stage's queue-name prefix, and its queues that only ever hold failure records."""
    from infra.topology import build_topology

    topology = build_topology(config.topology_subscribers(), config.business_timezone)
    prefix = topology.physical_name(config.stage, "")
    return prefix, {prefix + q.name for q in topology.queues if q.is_dead_letter_only}


def _dlq_list(args: argparse.Namespace) -> int:
    prefix, parked = _stage(_config(args))
    sqs = _sqs(args)
    rows = []
    for name, url in sorted(_stage_queues(sqs, prefix).items()):
        if not (name.endswith("-dlq") or name in parked):
            continue
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        depth = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        age = _oldest_age_s(sqs, url) if depth else None
        rows.append((name.removeprefix(prefix), depth, "-" if age is None else _age(age),
                     "stream failures (not redrivable)" if name in parked else name.removeprefix(prefix)[:-4]))
    print(f"{'queue':<28} {'depth':>6} {'oldest':>9}  source")
    for queue, depth, oldest, source in rows:
        print(f"{queue:<28} {depth:>6} {oldest:>9}  {source}")
    return 0


def _oldest_age_s(sqs: Any, url: str, limit: int = 100) -> float | None:
    """Age of the oldest of the first `limit` messages (SQS only exposes it as a CloudWatch metric)."""
    messages = peek(sqs, url, limit)
    if not messages:
        return None
    return time.time() - min(int(m["Attributes"]["SentTimestamp"]) for m in messages) / 1000


def peek(sqs: Any, url: str, limit: int) -> list[dict]:
    """Up to `limit` messages with their attributes, oldest first, left in the queue.

    Receiving hides each message for a moment; they are made visible again right away.
    """
    seen: dict[str, dict] = {}
    while len(seen) < limit:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(seen)),
                                  VisibilityTimeout=30, MessageAttributeNames=["All"],
                                  MessageSystemAttributeNames=["All"]).get("Messages", [])
        fresh = [m for m in got if m["MessageId"] not in seen]
        seen.update({m["MessageId"]: m for m in fresh})
        if not fresh:
            break
    messages = sorted(seen.values(), key=lambda m: int(m["Attributes"].get("SentTimestamp", "0")))
    for i in range(0, len(messages), 10):
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for n, m in enumerate(messages[i:i + 10])])
    return messages


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _dead_letter_queue(args: argparse.Namespace) -> tuple[Any, dict[str, str], str, str, set[str]] | None:
    """(sqs client, the stage's queues, the prefix, the DLQ's physical name, failure-only queues), or None
    after saying why the name is not a dead-letter queue of the stage."""
    prefix, parked = _stage(_config(args))
    sqs = _sqs(args)
    queues = _stage_queues(sqs, prefix)
    name = args.queue.rsplit("/", 1)[-1]
    name = name if name.startswith(prefix) else prefix + name
    if name not in queues:
        print(f"no queue {name} under {prefix}*", file=sys.stderr)
        return None
    if not (name.endswith("-dlq") or name in parked):
        print(f"{name} is a work queue, not a dead-letter queue", file=sys.stderr)
        return None
    return sqs, queues, prefix, name, parked


def _dlq_show(args: argparse.Namespace) -> int:
    found = _dead_letter_queue(args)
    if found is None:
        return 2
    sqs, queues, prefix, name, _ = found
    messages = peek(sqs, queues[name], args.max)
    print(f"{name.removeprefix(prefix)}: {len(messages)} message(s) shown, oldest first")
    for m in messages:
        print()
        for line in describe_parked(m, full_body=args.body):
            print(line)
    return 0


def describe_parked(message: dict, *, full_body: bool = False) -> list[str]:
    """What an operator needs to decide on a parked message, without dumping personal data by default."""
    attrs = message.get("Attributes", {})
    sent = int(attrs.get("SentTimestamp", "0")) / 1000
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(sent)) if sent else "?"
    extra = {k: v.get("StringValue", "<binary>") for k, v in (message.get("MessageAttributes") or {}).items()}
    lines = [f"  id {message['MessageId']}  parked {when} ({_age(time.time() - sent)} ago)"
             f"  received {attrs.get('ApproximateReceiveCount', '?')}x"]
    if extra.get("reason"):
        lines.append(f"  reason: {extra.pop('reason')}")
    if extra:
        lines.append("  attributes: " + ", ".join(f"{k}={v}" for k, v in sorted(extra.items()) if k != "raw"))
    body = message.get("Body", "")
    lines.append("  " + (body if full_body else _summary(body)))
    return lines


def _summary(body: str) -> str:
    """An EventBridge event: its type and ids; an intake message: channel and event id; else the size."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        return f"body: {len(body)} characters (not JSON; --body prints it)"
    if isinstance(doc, dict) and "detail-type" in doc:
        detail = doc.get("detail") or {}
        return (f"{doc['detail-type']} event {detail.get('event_id')} of order {detail.get('order_id')} "
                f"({detail.get('channel')} {detail.get('channel_order_id')}), status {detail.get('status')}")
    if isinstance(doc, dict):
        known = {k: doc[k] for k in ("channel", "event_id", "received_at", "request_id", "key", "title") if k in doc}
        if known:
            return "  ".join(f"{k}={v}" for k, v in known.items()) + "  (--body prints the whole body)"
    return f"body: {len(body)} characters (--body prints it)"


def _dlq_purge(args: argparse.Namespace) -> int:
    found = _dead_letter_queue(args)
    if found is None:
        return 2
    sqs, queues, prefix, name, _ = found
    url = queues[name]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    depth = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
    if not args.yes:
        answer = input(f"Delete all {depth} message(s) of {name}? They cannot be redriven afterwards. "
                       f"Type the queue name ({name.removeprefix(prefix)}) to confirm: ")
        if answer.strip() not in (name, name.removeprefix(prefix)):
            print("not purged", file=sys.stderr)
            return 1
    sqs.purge_queue(QueueUrl=url)
    print(f"purged {name.removeprefix(prefix)}: {depth} message(s) deleted")
    return 0


def _dlq_redrive(args: argparse.Namespace) -> int:
    found = _dead_letter_queue(args)
    if found is None:
        return 2
    sqs, queues, prefix, name, parked = found
    if name in parked:
        print(f"{name} holds stream failure records (metadata, not events): inspect them and replay from "
              "the orders table instead", file=sys.stderr)
        return 2
    source = name.removesuffix("-dlq")
    if not name.endswith("-dlq") or source not in queues:
        print(f"{name} is not the DLQ of a queue under {prefix}*", file=sys.stderr)
        return 2
    moved, failed = redrive(sqs, queues[name], queues[source], args.max)
    print(f"redrive {name.removeprefix(prefix)} -> {source.removeprefix(prefix)}: moved {moved}, failed {failed}")
    return 1 if failed else 0


def redrive(sqs: Any, dlq_url: str, source_url: str, limit: int | None = None) -> tuple[int, int]:
    """Move messages back, body and attributes intact; send before delete so nothing is lost.

    moto has no StartMessageMoveTask, so this receives, sends and deletes itself. It moves at
    most the depth found at the start: messages that fail again and come back are not
    picked up a second time in the same run.
    """
    attrs = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
    budget = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    budget = budget if limit is None else min(budget, limit)
    moved = failed = 0
    while moved + failed < budget:
        batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=min(10, budget - moved - failed),
                                    VisibilityTimeout=60, MessageAttributeNames=["All"],
                                    MessageSystemAttributeNames=["All"]).get("Messages", [])
        if not batch:
            break
        entries = [{"Id": str(i), "MessageBody": m["Body"],
                    **({"MessageAttributes": _sendable(m["MessageAttributes"])} if m.get("MessageAttributes") else {})}
                   for i, m in enumerate(batch)]
        reply = sqs.send_message_batch(QueueUrl=source_url, Entries=entries)
        sent = {int(ok["Id"]) for ok in reply.get("Successful", [])}
        done = [{"Id": str(i), "ReceiptHandle": batch[i]["ReceiptHandle"]} for i in sorted(sent)]
        if done:
            for err in sqs.delete_message_batch(QueueUrl=dlq_url, Entries=done).get("Failed", []):
                # Sent but still in the DLQ: a second redrive would duplicate it. Say so, loudly.
                print(f"  moved but not deleted from the DLQ (possible duplicate): {err}", file=sys.stderr)
        unsent = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                  for i, m in enumerate(batch) if i not in sent]
        if unsent:  # leave them in the DLQ, visible again for the next attempt
            sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=unsent)
            for err in reply.get("Failed", []):
                print(f"  not moved: {err.get('Code')}: {err.get('Message')}", file=sys.stderr)
        moved += len(sent)
        failed += len(unsent)
    return moved, failed


def _sendable(attributes: dict) -> dict:
    # ReceiveMessage returns empty list fields that SendMessage rejects.
    return {name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
            for name, value in attributes.items()}


# --------------------------------------------------------------------------- import, replay, reports


def _operator_commands(sub: Any) -> None:
    def aws_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help=PREFIX_HELP)
        p.add_argument("--endpoint-url", default=None, help="AWS endpoint (default: env AWS_ENDPOINT_URL, else AWS)")

    imp = sub.add_parser("import", help="import a CSV file of order events (events/import/README.md): all rows or none")
    imp.add_argument("file", type=Path, help="the CSV file (UTF-8, comma separated, header row)")
    imp.add_argument("--channel", required=True, help="the orders' channel, e.g. store-sh-01 or mall")
    imp.add_argument("--shop", default="", help="shop id for rows whose shop_id is empty")
    aws_options(imp)
    imp.set_defaults(func=_import)

    rep = sub.add_parser("replay", help="re-feed logged channel requests to the status mapper (idempotent)")
    rep.add_argument("--channel", help="entries reported by this channel module (a Scan of the event log)")
    rep.add_argument("--order", help="entries of this hub order id (a Query)")
    rep.add_argument("--since", help="received at or after (ISO; without offset: business time zone)")
    rep.add_argument("--until", help="received before (ISO; without offset: business time zone)")
    rep.add_argument("--outcome", help="only entries logged with this outcome, e.g. unmapped")
    rep.add_argument("--dry-run", action="store_true", help="list what would be re-fed, send nothing")
    aws_options(rep)
    rep.set_defaults(func=_replay)

    for name, func, text in (("drift", _drift_report, "unknown payload fields per channel, and the rule covering each"),
                             ("gaps", _gaps_report, "codes without a row in their channel's mapping table")):
        group = sub.add_parser(name, help=text).add_subparsers(dest=f"{name}_command", required=True)
        p = group.add_parser("report", help=text)
        p.add_argument("--channel", help="one channel only")
        aws_options(p)
        p.set_defaults(func=func)


def _client(args: argparse.Namespace, service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)


def _physical(config: Any, name: str) -> str:
    from infra.topology import build_topology

    return build_topology(config.topology_subscribers(), config.business_timezone).physical_name(config.stage, name)


def _intake_sender(args: argparse.Namespace, config: Any) -> Any:
    from infra.topology import INTAKE_QUEUE
    from orderhub.intake_batch import IntakeBatchSender

    sqs = _client(args, "sqs")
    return IntakeBatchSender(sqs.get_queue_url(QueueName=_physical(config, INTAKE_QUEUE))["QueueUrl"], sqs)


def _import(args: argparse.Namespace) -> int:
    from orderhub.clock import SystemClock
    from orderhub.imports import ENQUEUED, run_import

    config = _config(args)
    report = run_import(args.file.read_bytes(), file_name=args.file.name, channel=args.channel, shop_id=args.shop,
                        business_tz=config.business_timezone, now=SystemClock().now(),
                        sender=_intake_sender(args, config), request_id=f"cli:{args.file.name}"[:64])
    print(report.render())
    return 0 if report.status == ENQUEUED else 1


def _replay(args: argparse.Namespace) -> int:
    from infra.replay import Selection, plan_replay, render_plan, select_entries, send_plan, utc_bound
    from infra.topology import ORDER_EVENTS_TABLE
    from orderhub.clock import SystemClock

    if not (args.channel or args.order):
        print("replay needs --channel or --order", file=sys.stderr)
        return 2
    config = _config(args)
    tz = config.business_timezone
    selection = Selection(channel=args.channel, order_id=args.order, outcome=args.outcome,
                          since=utc_bound(args.since, tz) if args.since else None,
                          until=utc_bound(args.until, tz) if args.until else None)
    if not args.order:
        print("scanning the whole event log (billed per item read, whatever the filter keeps)…", file=sys.stderr)
    entries = list(select_entries(_client(args, "dynamodb"), _physical(config, ORDER_EVENTS_TABLE), selection))
    plan = plan_replay(entries, SystemClock().now())
    print(render_plan(plan))
    if args.dry_run:
        print(f"dry run: {len(plan.messages)} requests would be re-fed ({len(entries)} log entries)")
        return 0
    result = send_plan(plan, _intake_sender(args, config))
    print(f"re-fed {result.sent} of {result.planned} requests ({len(entries)} log entries)"
          + (f"; {result.failure}" if result.failure else ""))
    return 1 if result.failure else 0


def _health(args: argparse.Namespace, config: Any) -> list[Any]:
    from infra.topology import CHANNEL_HEALTH_TABLE
    from orderhub.store.health import ChannelHealth

    store = ChannelHealth(_client(args, "dynamodb"), _physical(config, CHANNEL_HEALTH_TABLE))
    return store.entries(channel=args.channel)


def _drift_report(args: argparse.Namespace) -> int:
    import json

    from infra.reports import drift_report
    from orderhub.channels.base import NO_RULES, FieldRules

    config = _config(args)
    ssm = _client(args, "ssm")

    def rules_for(channel: str) -> FieldRules:  # the configuration the mapper reads now
        try:
            document = json.loads(ssm.get_parameter(Name=f"{config.config_prefix}/channels/{channel}")
                                  ["Parameter"]["Value"])
        except ssm.exceptions.ParameterNotFound:
            return NO_RULES
        return FieldRules.from_document(document.get("field_rules"))

    print(drift_report(_health(args, config), rules_for))
    return 0


def _gaps_report(args: argparse.Namespace) -> int:
    from infra.reports import gaps_report

    print(gaps_report(_health(args, _config(args))))
    return 0


# --------------------------------------------------------------------------- exceptions


EXCEPTION_TYPES = ("payment", "logistics", "product", "risk")


def _exceptions_commands(sub: Any) -> None:
    group = sub.add_parser("exceptions", help="exceptions and their SLAs (EXC-1..3): list, report")
    commands = group.add_subparsers(dest="exceptions_command", required=True)
    rep = commands.add_parser("report", help="count, mean time to resolve, share within SLA, escalation and "
                                             "recurrence per type and month (a Scan of the exceptions table)")
    rep.add_argument("--month", help="YYYY-MM in the business time zone (default: every month)")
    rep.add_argument("--type", choices=EXCEPTION_TYPES, help="one type only")
    lst = commands.add_parser("list", help="exceptions by SLA deadline, the nearest first, with their countdown")
    lst.add_argument("--state", choices=("unresolved", "open", "acknowledged", "resolved"), default="unresolved")
    lst.add_argument("--type", choices=EXCEPTION_TYPES, help="one type only")
    lst.add_argument("--limit", type=int, default=50, help="at most this many (default 50, at most 500)")
    for p, func in ((rep, _exceptions_report), (lst, _exceptions_list)):
        p.add_argument("--config", type=Path, help=PREFIX_HELP)
        p.add_argument("--endpoint-url", default=None, help="AWS endpoint (default: env AWS_ENDPOINT_URL, else AWS)")
        p.set_defaults(func=func)


def _exception_store(args: argparse.Namespace, config: Any) -> Any:
    from infra.topology import EXCEPTIONS_TABLE
    from orderhub.store.exceptions import DynamoExceptionStore

    return DynamoExceptionStore(_client(args, "dynamodb"), _physical(config, EXCEPTIONS_TABLE))


def _exceptions_report(args: argparse.Namespace) -> int:
    import re

    from orderhub.clock import SystemClock
    from orderhub.exceptions.report import exceptions_report, render_report

    if args.month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        print(f"--month {args.month}: expected YYYY-MM", file=sys.stderr)
        return 2
    config = _config(args)
    rows = exceptions_report(_exception_store(args, config).scan(), config.business_timezone, SystemClock().now(),
                             month=args.month, of_type=args.type)
    print(render_report(rows))
    return 0


def _exceptions_list(args: argparse.Namespace) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from infra.reports import table
    from orderhub.clock import SystemClock
    from orderhub.exceptions.handling import ListQuery, list_exceptions

    config = _config(args)
    tz = ZoneInfo(config.business_timezone)
    query = ListQuery(state=args.state, type=args.type, limit=max(1, min(args.limit, 500)))
    listing = list_exceptions(_exception_store(args, config), query, SystemClock().now())
    if not listing.exceptions:
        print(f"no {args.state} exceptions")
        return 0

    def local(iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")

    def remaining(seconds: int) -> str:
        sign, minutes = ("-" if seconds < 0 else ""), abs(seconds) // 60
        return f"{sign}{minutes // 60}h{minutes % 60:02d}m"

    rows = [[local(e.sla_deadline), remaining(e.sla_remaining_s) if e.unresolved else "-", e.state.value
             + (" (escalated)" if e.escalated_at else ""), e.type.value, e.rule.value,
             f"{e.channel}/{e.channel_order_id}", e.owner, e.exception_id] for e in listing.exceptions]
    print(table(["deadline", "left", "state", "type", "rule", "order", "owner", "id"], rows))
    if listing.truncated:
        print(f"(first {listing.count}; --limit for more)")
    return 0


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    from infra.demo import main as demo_main  # the lead's module; imported only when asked for

    return int(demo_main(args.rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
