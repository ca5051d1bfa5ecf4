"""`orderhub exceptions list | report`: exceptions and their SLAs (EXC-1..3), read from the stage's table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from infra.cli.common import aws_client, aws_options, physical, stage_config

EXCEPTION_TYPES = ("payment", "logistics", "product", "risk")


def register(sub: Any) -> None:
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
        aws_options(p)
        p.set_defaults(func=func)


def _exception_store(args: argparse.Namespace, config: Any) -> Any:
    from infra.topology import EXCEPTIONS_TABLE
    from orderhub.store.exceptions import DynamoExceptionStore

    return DynamoExceptionStore(aws_client(args, "dynamodb"), physical(config, EXCEPTIONS_TABLE))


def _exceptions_report(args: argparse.Namespace) -> int:
    import re

    from orderhub.clock import SystemClock
    from orderhub.exceptions.report import exceptions_report, render_report

    if args.month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        print(f"--month {args.month}: expected YYYY-MM", file=sys.stderr)
        return 2
    config = stage_config(args)
    rows = exceptions_report(_exception_store(args, config).scan(), config.business_timezone, SystemClock().now(),
                             month=args.month, of_type=args.type)
    print(render_report(rows))
    return 0


def _exceptions_list(args: argparse.Namespace) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from infra.cli.reports import table
    from orderhub.clock import SystemClock
    from orderhub.exceptions.handling import ListQuery, list_exceptions

    config = stage_config(args)
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
