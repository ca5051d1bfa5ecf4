"""`orderhub recon try`: reconciliation on files, so finance can try a bill by hand (REC).

    orderhub recon try --ledger 2026-11-22.jsonl --statement wechatpay_trade_all_20261122.csv \\
        --format wechatpay --source wechatpay --date 2026-11-22 [--out DIR]

`--ledger` is a ledger export (`orderhub ledger export DATE`, `reconciliation.ledger_export`); `--statement`
is the provider's bill or the bank's statement as downloaded, read by the format's reader: `wechatpay` (the
trade bill, plain or gzipped), `alipay` (the business bill zip), `mt940`, `camt053` (optionally `:NAME`, the
bank the lines are said to come from) or `bank-csv:icbc` / `bank-csv:ccb` (a bank's CSV export by its default
column mapping). `--source` is whose movements of the ledger are matched (`wechatpay`, `alipay`, or `bank`:
the transfers finance recorded) and must be the one the format reads. The ledger's movements of the source
first reported on `--date` are matched against every line of the statement (`reconciliation.matcher`).

It writes the run's `report.json`, `differences.csv`, `report.html` and `manifest.json` into DIR (default
`./recon-<source>-<date>/`, replacing those four files) and prints the verdict, the match rate, the
differences by label and where the page is. Nothing touches AWS and nothing reads a clock: the run's time
is the end of the statement's period (the end of `--date` when the statement names none), so the same files
give the same bytes, as the manifest shows; the manifest names the inputs by their role, not their path.

Exit status: 0 RECONCILED or RECONCILED_WITH_PENDING; 1 BREAKS or INCOMPLETE; 2 bad input (a file that cannot
be read, a statement or ledger export refused, with its line and reason, a statement of another day, a format
that is not the source's).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from collections.abc import Sequence

    from orderhub.payments.ledger import LedgerRecord
    from orderhub.reconciliation.statements import Statement

EXIT_AGREES = 0
EXIT_DIFFERS = 1
EXIT_BAD_INPUT = 2

# The statement formats, and whose money each one reports (the ledger's provider its movements are of).
SOURCE_OF_FORMAT = {"wechatpay": "wechatpay", "alipay": "alipay", "mt940": "bank", "camt053": "bank",
                    "bank-csv": "bank"}
SOURCES = ("wechatpay", "alipay", "bank")
OUTPUTS = ("report.json", "differences.csv", "report.html", "manifest.json")


def register(sub: Any) -> None:
    group = sub.add_parser("recon", help="reconciliation (REC): a statement against the ledger, on files")
    commands = group.add_subparsers(dest="recon_command", required=True)
    attempt = commands.add_parser(
        "try", help="match a ledger export against a statement file; write the run's reports into a folder")
    attempt.add_argument("--ledger", required=True, type=Path, help="a ledger export (orderhub ledger export DATE)")
    attempt.add_argument("--statement", required=True, type=Path, help="the bill or bank statement, as downloaded")
    attempt.add_argument("--format", required=True, dest="statement_format",
                         help="wechatpay | alipay | mt940[:BANK] | camt053[:BANK] | bank-csv:icbc | bank-csv:ccb")
    attempt.add_argument("--source", required=True, choices=SOURCES, help="whose movements of the ledger to match")
    attempt.add_argument("--date", required=True, help="the business day, YYYY-MM-DD (business time zone)")
    attempt.add_argument("--out", type=Path, help="the folder for the reports (default: ./recon-<source>-<date>/)")
    attempt.set_defaults(func=_try)


class BadInput(ValueError):
    """What stops a run before it starts; said on stderr, exit 2."""


def read_statement(statement_format: str, data: bytes) -> Statement:
    """The statement `data` read by the reader `statement_format` names (`StatementRefused` when it refuses
    it, `BadInput` when the format is not one)."""
    name, _, variant = statement_format.strip().partition(":")
    if name == "wechatpay" and not variant:
        from orderhub.reconciliation.formats.wechatpay_bill import read_trade_bill

        return read_trade_bill(data)
    if name == "alipay" and not variant:
        from orderhub.reconciliation.formats.alipay_bill import read_business_bill

        return read_business_bill(data)
    if name == "mt940":
        from orderhub.reconciliation.formats.mt940 import read_mt940

        return read_mt940(data, bank=variant or "bank")
    if name == "camt053":
        from orderhub.reconciliation.formats.camt053 import read_camt053

        return read_camt053(data, bank=variant or "bank")
    if name == "bank-csv":
        from orderhub.reconciliation.formats.bank_csv import DEFAULT_MAPPINGS, read_bank_csv

        if variant not in DEFAULT_MAPPINGS:
            raise BadInput(f"--format bank-csv:BANK names the export's bank, one of "
                           f"{', '.join(f'bank-csv:{b}' for b in sorted(DEFAULT_MAPPINGS))}")
        return read_bank_csv(data, DEFAULT_MAPPINGS[variant])
    raise BadInput(f"--format {statement_format[:40]!r} is not one of wechatpay, alipay, mt940, camt053, bank-csv:BANK")


def _moment(text: str, tz: ZoneInfo) -> datetime | None:
    """A period's bound as an instant: a datetime as written (without an offset: in `tz`), a date as the end of
    that day in `tz`; None when it is neither."""
    text = text.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text) + timedelta(days=1), datetime.min.time(), tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _days(text: str, tz: ZoneInfo) -> date | None:
    text = text.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)).astimezone(tz).date()


def covers(period: str, day: str, tz: str) -> bool | None:
    """Whether the statement's `period` ("2026-11-22", "2026-03-13..2026-03-14", camt's "FrDtTm..ToDtTm", several
    joined by ", ") includes business day `day`; None when it names no day this can read."""
    zone = ZoneInfo(tz)
    wanted = date.fromisoformat(day)
    spans = []
    for part in filter(None, (p.strip() for p in period.split(","))):
        start_text, _, end_text = part.partition("..")
        start, end = _days(start_text, zone), _days(end_text or start_text, zone)
        if start is not None and end is not None:
            spans.append((start, end))
    if not spans:
        return None
    return any(start <= wanted <= end for start, end in spans)


def run_time(period: str, day: str, tz: str) -> str:
    """The run's time for its reports (UTC ISO): the latest end the statement's period names (a date: the end
    of that business day), else the end of business day `day`. Never the wall clock: the files decide it."""
    from orderhub.clock import utc_iso

    zone = ZoneInfo(tz)
    ends = [moment for part in period.split(",") if part.strip()
            if (moment := _moment(part.rpartition("..")[2], zone)) is not None]
    end = max(ends) if ends else _moment(day, zone)
    assert end is not None  # `day` is a date: parse_day said so
    return utc_iso(end)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def _try(args: argparse.Namespace) -> int:
    from orderhub.payments.journal import parse_day
    from orderhub.reconciliation.ledger_export import LedgerExportRefused, read_records
    from orderhub.reconciliation.statements import StatementRefused
    from orderhub.settings import business_tz

    try:
        day = parse_day(args.date)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        name = args.statement_format.strip().partition(":")[0]
        if SOURCE_OF_FORMAT.get(name, args.source) != args.source:
            raise BadInput(f"--format {name} reads {SOURCE_OF_FORMAT[name]}'s movements, not {args.source}'s: "
                           f"--source {SOURCE_OF_FORMAT[name]}")
        ledger_data, statement_data = _read(args.ledger, "ledger export"), _read(args.statement, "statement")
        records = read_records(ledger_data)
        statement = read_statement(args.statement_format, statement_data)
        tz = business_tz()
        if covers(statement.period, day, tz) is False:
            raise BadInput(f"the statement covers {statement.period}, not {day}")
    except StatementRefused as exc:
        print(f"statement refused: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (LedgerExportRefused, BadInput) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    files, summary = run(day, args.source, records, statement, {"ledger": ledger_data, "statement": statement_data},
                         tz)
    out = args.out or Path(f"recon-{args.source}-{day}")
    out.mkdir(parents=True, exist_ok=True)
    for file_name in OUTPUTS:
        (out / file_name).write_bytes(files[file_name])
    print(render(summary, out))
    return EXIT_AGREES if summary["verdict"] in ("RECONCILED", "RECONCILED_WITH_PENDING") else EXIT_DIFFERS


def run(day: str, source: str, records: Sequence[LedgerRecord], statement: Statement, inputs: dict[str, bytes],
        tz: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The run's files and its summary: the ledger's movements of `source` first reported on `day`, matched
    against every line of `statement`. Pure: the same arguments give the same bytes."""
    from orderhub.reconciliation.ledger_side import rows_for_source
    from orderhub.reconciliation.matcher import Settings, match
    from orderhub.reconciliation.report import RunInputs, reports, summary

    rows = rows_for_source(records, source, business_date=day)
    result = match(rows, statement.lines, Settings(business_tz=tz))
    run_inputs = RunInputs(business_date=day, source=source, ledger=rows, statement=statement, inputs=inputs,
                           run_at=run_time(statement.period, day, tz))
    return reports(run_inputs, result), summary(run_inputs, result)


def render(summary: dict[str, Any], out: Path) -> str:
    """What the run prints: the verdict, the match rate, the differences by label, where the page is."""
    lines = [f"{summary['source']} {summary['business_date']}: {summary['verdict']}",
             f"  match rate {summary['match_rate']:.2%}: {summary['matched_lines']} of {summary['statement_lines']} "
             f"statement lines, {summary['matched_movements']} of {summary['ledger_movements']} ledger movements",
             "  differences: " + (", ".join(f"{label} {n}" for label, n in summary["differences_by_label"].items())
                                   or "none"),
             f"  report: {out / 'report.html'} (report.json, differences.csv, manifest.json beside it)"]
    return "\n".join(lines)
