"""`orderhub`: run the hub locally, and operate it (locally or in AWS).

The operator commands are plain boto3: with normal credentials they act on AWS; pointed at a
running `orderhub run` (AWS_ENDPOINT_URL or --endpoint-url) they act on its embedded moto:
`dlq list|show|redrive|purge` (infra/cli_dlq.py), `exceptions list|report` (infra/cli_exceptions.py),
`import` (a CSV file of order events, events/import/), `replay` (re-feed logged requests,
infra/replay.py) and `drift report` / `gaps report` (infra/reports.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from infra.cli_common import aws_client, aws_options, physical, stage_config
from infra.cli_dlq import register as register_dlq
from infra.cli_exceptions import register as register_exceptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orderhub", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve the hub locally on moto until Ctrl-C / SIGTERM")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")), help="HTTP API port (env PORT)")
    run.add_argument("--moto-port", type=int, default=None, help="embedded AWS endpoint port (default: a free one)")
    run.add_argument("--config", type=Path, help="configuration file (default: ORDERHUB_CONFIG or config/local.toml)")
    run.set_defaults(func=_run)

    register_dlq(sub)
    _operator_commands(sub)
    register_exceptions(sub)

    demo = sub.add_parser("demo", help="start the hub locally, play the sample traffic, print a summary")
    demo.set_defaults(func=_demo)

    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "demo":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return int(args.func(args) or 0)


# --------------------------------------------------------------------------- run


def _run(args: argparse.Namespace) -> int:
    from infra.local.runtime import LocalRuntime

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = stage_config(args)
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


# --------------------------------------------------------------------------- import, replay, reports


def _operator_commands(sub: Any) -> None:
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


def _intake_sender(args: argparse.Namespace, config: Any) -> Any:
    from infra.topology import INTAKE_QUEUE
    from orderhub.intake_batch import IntakeBatchSender

    sqs = aws_client(args, "sqs")
    return IntakeBatchSender(sqs.get_queue_url(QueueName=physical(config, INTAKE_QUEUE))["QueueUrl"], sqs)


def _import(args: argparse.Namespace) -> int:
    from orderhub.clock import SystemClock
    from orderhub.imports import ENQUEUED, run_import

    config = stage_config(args)
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
    config = stage_config(args)
    tz = config.business_timezone
    selection = Selection(channel=args.channel, order_id=args.order, outcome=args.outcome,
                          since=utc_bound(args.since, tz) if args.since else None,
                          until=utc_bound(args.until, tz) if args.until else None)
    if not args.order:
        print("scanning the whole event log (billed per item read, whatever the filter keeps)…", file=sys.stderr)
    entries = list(select_entries(aws_client(args, "dynamodb"), physical(config, ORDER_EVENTS_TABLE), selection))
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

    store = ChannelHealth(aws_client(args, "dynamodb"), physical(config, CHANNEL_HEALTH_TABLE))
    return store.entries(channel=args.channel)


def _drift_report(args: argparse.Namespace) -> int:
    import json

    from infra.reports import drift_report
    from orderhub.channels.base import NO_RULES, FieldRules

    config = stage_config(args)
    ssm = aws_client(args, "ssm")

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

    print(gaps_report(_health(args, stage_config(args))))
    return 0


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    from infra.demo import main as demo_main  # the lead's module; imported only when asked for

    return int(demo_main(args.rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
