"""`orderhub import FILE --channel X`: a CSV file of order events through the pipeline, all rows or none (ING-6)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from infra.cli.common import aws_options, intake_sender, stage_config


def register(sub: Any) -> None:
    imp = sub.add_parser("import", help="import a CSV file of order events (events/import/README.md): all rows or none")
    imp.add_argument("file", type=Path, help="the CSV file (UTF-8, comma separated, header row)")
    imp.add_argument("--channel", required=True, help="the orders' channel, e.g. store-sh-01 or mall")
    imp.add_argument("--shop", default="", help="shop id for rows whose shop_id is empty")
    aws_options(imp)
    imp.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    from orderhub.clock import SystemClock
    from orderhub.imports import ENQUEUED, run_import

    config = stage_config(args)
    report = run_import(args.file.read_bytes(), file_name=args.file.name, channel=args.channel, shop_id=args.shop,
                        business_tz=config.business_timezone, now=SystemClock().now(),
                        sender=intake_sender(args, config), request_id=f"cli:{args.file.name}"[:64])
    print(report.render())
    return 0 if report.status == ENQUEUED else 1
