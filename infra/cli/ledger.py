"""`orderhub ledger show | day | journal | export | record-transfer | confirm | reverse`: finance's side of the
payment voucher ledger (PAY-2), on the stage's tables and intake queue.

- `show ORDER` (a hub id `oh_...`, or `channel:number`): the order's money and its movements, each with its
  records by id (who reported it, who recorded it, why).
- `day DATE`: the business day's totals by currency, method class, direction and state.
- `journal DATE [--out FILE]`: the day's journal lines as CSV for the ERP's voucher import (UTF-8 with BOM;
  `payments.journal` has the accounts scheme); stdout without --out.
- `export DATE [--out FILE]`: the day's records, and the other records of the orders they name, as JSON lines
  (`reconciliation.ledger_export`: every field but the payload, sorted by record id), the file finance keeps
  beside the day's statement and gives `orderhub recon try`; stdout without --out.
- `record-transfer --order ORDER --amount 123.45 --reference SERIAL --reason TEXT [--currency CNY]`: a bank
  transfer finance saw (pending until confirmed); `--method credit` records a sale on account instead,
  `--kind refund` money paid back. The amount is in the currency's major unit (yuan), converted exactly.
- `confirm ENTRY --order ORDER --reason TEXT`, `reverse ENTRY --order ORDER --reason TEXT`: an entry of the
  order's ledger (as `show` lists it: `bank:payment:SERIAL`, or one of its record ids) confirmed, or reversed
  (a correction: never an edit). The ledger is read by order, so the order is named too.

Commands are checked against the order and queued like the ledger API's (`payments.commands`): nothing is
written here; the status mapper books what they say, and `show` lists it once mapped. The actor kept with
the record is `cli:<--by>` (default: the operator's login name).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.cli.common import aws_client, aws_options, physical, stage_config

if TYPE_CHECKING:
    from orderhub.payments.ledger import LedgerRecord

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


def register(sub: Any) -> None:
    group = sub.add_parser("ledger", help="the payment voucher ledger (PAY-2): show an order's money, a day's "
                                          "totals and journal; record, confirm or reverse a bank transfer")
    commands = group.add_subparsers(dest="ledger_command", required=True)
    show = commands.add_parser("show", help="an order's money and its movements, with their records")
    show.add_argument("order", help="hub order id (oh_...) or channel:number")
    day = commands.add_parser("day", help="a business day's totals by currency, method class and state")
    day.add_argument("date", help="YYYY-MM-DD (business time zone)")
    journal = commands.add_parser("journal", help="a business day's journal lines as CSV (ERP voucher import)")
    journal.add_argument("date", help="YYYY-MM-DD (business time zone)")
    journal.add_argument("--out", type=Path, help="write the CSV here (default: stdout)")
    export = commands.add_parser("export", help="a business day's records as JSON lines (for `orderhub recon try`)")
    export.add_argument("date", help="YYYY-MM-DD (business time zone)")
    export.add_argument("--out", type=Path, help="write the JSON lines here (default: stdout)")
    record = commands.add_parser("record-transfer", help="record a bank transfer (pending until confirmed)")
    record.add_argument("--order", required=True, help="hub order id (oh_...) or channel:number")
    record.add_argument("--amount", required=True, help="in yuan (major units), e.g. 123.45")
    record.add_argument("--currency", help="ISO 4217 code (default: the order's)")
    record.add_argument("--reference", required=True, help="the bank's serial number of the transfer")
    record.add_argument("--kind", choices=("payment", "refund"), default="payment")
    record.add_argument("--method", choices=("bank_transfer", "credit"), default="bank_transfer")
    record.add_argument("--payment-reference", default="", help="a refund: the payment it pays back")
    parsers = [show, day, journal, export, record]
    for name, verb in (("confirm", "confirm a pending entry"), ("reverse", "reverse an entry (a correction)")):
        p = commands.add_parser(name, help=f"{verb} of the order's ledger")
        p.add_argument("entry", help="the entry id as `ledger show` lists it (e.g. bank:payment:SERIAL)")
        p.add_argument("--order", required=True, help="hub order id (oh_...) or channel:number")
        parsers.append(p)
    for p in parsers[4:]:
        p.add_argument("--reason", required=True, help="why (kept with the record; at most 200 characters)")
        p.add_argument("--at", help="when (ISO 8601; without offset: business time zone; default: now)")
        p.add_argument("--by", help="who (default: your login name); kept as cli:<by>")
    for p, func in ((show, _show), (day, _day), (journal, _journal), (export, _export),
                    *((p, _command) for p in parsers[4:])):
        aws_options(p)
        p.set_defaults(func=func)


def order_store(args: argparse.Namespace, config: Any) -> Any:
    from infra.topology import ORDER_EVENTS_TABLE, ORDERS_TABLE
    from orderhub.store.orders import DynamoOrderStore

    client = aws_client(args, "dynamodb")
    return DynamoOrderStore(client, physical(config, ORDERS_TABLE), physical(config, ORDER_EVENTS_TABLE))


def payments_ledger(args: argparse.Namespace, config: Any) -> Any:
    from infra.topology import PAYMENTS_TABLE
    from orderhub.store.ledger import DynamoLedger

    return DynamoLedger(aws_client(args, "dynamodb"), physical(config, PAYMENTS_TABLE))


def intake_queue(args: argparse.Namespace, config: Any) -> Any:
    from infra.topology import INTAKE_QUEUE
    from orderhub.intake import IntakeQueue

    sqs = aws_client(args, "sqs")
    return IntakeQueue(sqs.get_queue_url(QueueName=physical(config, INTAKE_QUEUE))["QueueUrl"], sqs)


def _refused(exc: Any) -> int:
    print(f"refused ({exc.status}): {exc.reason}", file=sys.stderr)
    return EXIT_BAD_INPUT if exc.status == 400 else EXIT_REFUSED


def _show(args: argparse.Namespace) -> int:
    from orderhub.payments.commands import CommandRefused, find_order, order_ref
    from orderhub.payments.journal import order_records, order_view

    config = stage_config(args)
    try:
        order = find_order(order_ref(args.order), order_store(args, config))
    except CommandRefused as exc:
        return _refused(exc)
    print(render_order(order_view(order, order_records(payments_ledger(args, config), order)),
                       config.business_timezone))
    return 0


def render_order(view: dict[str, Any], business_tz: str) -> str:
    from infra.cli.reports import table
    from orderhub.money import format_minor

    currency = view["currency"] or (view["money"]["currencies"] or [""])[0]
    m = view["money"]
    lines = [f"order {view['order_id']} ({view['channel']}:{view['channel_order_id']}), total "
             f"{format_minor(view['total_amount'], currency)}",
             f"  paid {format_minor(m['paid'], currency)}, refunded {format_minor(m['refunded'], currency)}, "
             f"net {format_minor(m['net'], currency)}; pending in {format_minor(m['pending_in'], currency)}, "
             f"pending out {format_minor(m['pending_out'], currency)}"]
    if not view["movements"]:
        return "\n".join([*lines, "  no ledger entries"])
    rows = [[mv["entry_id"], mv["state"] + (" (conflicting)" if mv["conflicting"] else ""), mv["method"],
             format_minor(mv["amount"], mv["currency"]), _local(mv["occurred_at"], business_tz)]
            for mv in view["movements"]]
    lines += ["", table(["entry", "state", "method", "amount", "at"], rows), ""]
    records = [[r["record_id"], r.get("source", ""), r.get("actor", ""), r["note"][:60]]
               for mv in view["movements"] for r in mv["records"]]
    lines.append(table(["record", "source", "actor", "note"], records))
    return "\n".join(lines)


def _local(iso: str, business_tz: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(iso).astimezone(ZoneInfo(business_tz)).strftime("%Y-%m-%d %H:%M")


def _records_of_day(args: argparse.Namespace) -> tuple[str, Any, list[LedgerRecord]] | None:
    """(the business day, the stage's configuration, the day's records and their orders' history), or None
    (said on stderr) when the date is not one."""
    from orderhub.payments.journal import day_records, parse_day

    try:
        day = parse_day(args.date)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return None
    config = stage_config(args)
    return day, config, day_records(payments_ledger(args, config), order_store(args, config), day)


def _day(args: argparse.Namespace) -> int:
    from infra.cli.reports import table
    from orderhub.payments.journal import day_view

    found = _records_of_day(args)
    if found is None:
        return EXIT_BAD_INPUT
    day, config, records = found
    view = day_view(day, records)
    if not view["totals"]:
        print(f"{day}: no ledger records")
        return 0
    rows = [[t["currency"], t["method"], t["kind"], t["state"], str(t["count"]), t["amount_text"]]
            for t in view["totals"]]
    print(f"{day} (business day, {config.business_timezone})")
    print(table(["currency", "method", "kind", "state", "count", "amount"], rows))
    for net in view["confirmed_net"]:
        print(f"  confirmed net {net['amount_text']} {net['currency']} (payments less refunds)")
    return 0


def _journal(args: argparse.Namespace) -> int:
    from orderhub.payments.journal import accounts_from_env, journal_csv, journal_lines

    found = _records_of_day(args)
    if found is None:
        return EXIT_BAD_INPUT
    day, _, records = found
    lines = journal_lines(records, day, accounts_from_env())
    _write(journal_csv(lines), args.out, f"{day}: {len(lines)} journal lines")
    return 0


def _export(args: argparse.Namespace) -> int:
    from orderhub.reconciliation.ledger_export import write_records

    found = _records_of_day(args)
    if found is None:
        return EXIT_BAD_INPUT
    day, _, records = found
    _write(write_records(records), args.out, f"{day}: {len(records)} ledger records")
    return 0


def _write(data: bytes, out: Path | None, what: str) -> None:
    """`data` to the file `out` (saying so on stderr), or as bytes to stdout."""
    if out:
        out.write_bytes(data)
        print(f"{what} written to {out}", file=sys.stderr)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def actor(by: str | None) -> str:
    """Who ran the command, as the record keeps it: `cli:<login>` (the operating system's login: the CLI
    knows no other identity yet)."""
    if not by:
        import getpass

        try:
            by = getpass.getuser()
        except (OSError, KeyError):  # no login name in this environment (a container without USER)
            by = "unknown"
    return f"cli:{by.strip()[:120]}"


def request_of(args: argparse.Namespace, order: Any, business_tz: str) -> dict[str, Any]:
    """The command request the CLI's arguments make (`payments.commands.CommandRequest`)."""
    from infra.cli.replay import utc_bound
    from orderhub.payments.commands import minor_units

    command = {"record-transfer": "record_transfer"}.get(args.ledger_command, args.ledger_command)
    request: dict[str, Any] = {"command": command, "order_id": order.order_id, "reason": args.reason}
    if args.at:
        try:
            request["occurred_at"] = utc_bound(args.at, business_tz)
        except ValueError:
            request["occurred_at"] = args.at  # refused by the command's own check, with its words
    if command == "record_transfer":
        currency = (args.currency or order.currency or "").strip().upper()
        request |= {"reference": args.reference, "kind": args.kind, "method": args.method,
                    "amount": minor_units(args.amount, currency or "CNY")}
        if currency:
            request["currency"] = currency
        if args.payment_reference:
            request["payment_reference"] = args.payment_reference
    else:
        request["entry"] = args.entry
    return request


def _command(args: argparse.Namespace) -> int:
    from orderhub.clock import SystemClock
    from orderhub.payments.commands import CommandRefused, find_order, order_ref, prepare, submit

    config = stage_config(args)
    now = SystemClock().now()
    orders = order_store(args, config)
    try:
        order = find_order(order_ref(args.order), orders)
        prepared = prepare(request_of(args, order, config.business_timezone), orders, now,
                           command_id=str(uuid.uuid4()), actor=actor(args.by))
    except CommandRefused as exc:
        return _refused(exc)
    submit(prepared, intake_queue(args, config), now)
    receipt = prepared.receipt()
    print(f"queued {receipt['command']} {receipt['command_id']}: order {receipt['order_id']}, entry "
          f"{receipt['entry_id']} -> {receipt['state']}")
    print(f"  record {receipt['record_id']}")
    print(f"  booked once the status mapper maps it: orderhub ledger show {receipt['order_id']}")
    return 0
