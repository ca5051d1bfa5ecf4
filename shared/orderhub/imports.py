"""CSV order files -> validated rows -> intake messages (ING-6): all rows, or none.

`orderhub import FILE --channel X` and the `file_importer` function (an S3 drop under
`imports/`) both call `run_import`:

1. Read: UTF-8 with or without BOM, comma separated, a header row naming the columns
   (`channels.file_import.COLUMNS`; order free, names case-insensitive).
2. Validate every row with the `import` channel module, the same code the status mapper
   parses the messages with, so a file that passes here cannot fail there. Any problem in
   any row -> nothing is sent and the report lists every problem with its row number
   (1-based, the header is row 1, as a spreadsheet numbers them).
3. Send one intake message per order event (channel `import`; the rows of a multi-line
   `created` make one event) with SendMessageBatch (`orderhub.intake_batch`), retrying each failed entry. If sending
   still fails midway the report says how far it got; importing the same file again is safe
   because event ids derive from the file's SHA-256 and the row number, so events already
   mapped are duplicates in the order's log.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from orderhub.channels.base import Malformed
from orderhub.channels.file_import import (
    CHANNEL,
    CHANNEL_NAME,
    COLUMNS,
    REQUIRED_COLUMNS,
    STATUS_MAP,
    ImportRow,
    RowProblem,
    business_zone,
    check_channel_name,
    check_group,
    message_body,
    read_row,
)
from orderhub.clock import EARLIEST_CHANNEL_TIME, channel_time_refusal, utc_iso
from orderhub.intake_batch import MAX_MESSAGE_BYTES, BatchSender, Failures, batches, send_with_retries
from orderhub.models.envelope import IntakeMessage

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000  # what one file_importer invocation sends well within its timeout; split bigger files
SEND_ATTEMPTS = 5  # calls per batch, the first one included
# An event time further ahead of the hub clock is a typo (year, time zone), not an event.
FUTURE_TOLERANCE = timedelta(minutes=10)

REJECTED, ENQUEUED, INCOMPLETE = "rejected", "enqueued", "incomplete"


@dataclass
class ImportReport:
    """What happened to one file; the CLI prints it, the importer stores it as JSON."""

    file: str
    channel: str
    sha256: str = ""
    status: str = REJECTED
    rows: int = 0  # data rows read (the header and blank rows not counted)
    events: int = 0  # order events the rows make (intake messages)
    enqueued: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str = ""  # why sending stopped (status incomplete)
    first_unsent_row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "channel": self.channel, "sha256": self.sha256, "status": self.status,
                "rows": self.rows, "events": self.events, "enqueued": self.enqueued,
                "errors": [e.as_dict() for e in self.errors], "warnings": self.warnings,
                "failure": self.failure, "first_unsent_row": self.first_unsent_row}

    def render(self) -> str:
        head = f"import {self.file} -> channel {self.channel}: "
        if self.status == ENQUEUED:
            lines = [head + f"{self.rows} rows, {self.events} events enqueued"]
        elif self.status == INCOMPLETE:
            lines = [head + f"INCOMPLETE: {self.enqueued} of {self.events} events enqueued, stopped at row "
                            f"{self.first_unsent_row}: {self.failure}",
                     "  importing the same file again is safe: events already enqueued are not applied twice"]
        else:
            lines = [head + f"REJECTED, nothing enqueued ({len(self.errors)} problems in {self.rows} rows)"]
            lines += [f"  {e}" for e in self.errors]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass(frozen=True)
class PreparedImport:
    report: ImportReport
    messages: list[tuple[int, IntakeMessage]]  # (first row, message), in row order


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def prepare_import(data: bytes, *, file_name: str, channel: str, shop_id: str, business_tz: str,
                   now: datetime, request_id: str = "", source_ip: str = "") -> PreparedImport:
    """Read and validate the whole file; messages only when every row is valid."""
    report = ImportReport(file=file_name, channel=channel, sha256=file_sha256(data))

    def reject(row: int, column: str, message: str) -> PreparedImport:
        report.errors.append(RowProblem(row, column, message))
        return PreparedImport(report, [])

    why = check_channel_name(channel)
    if why:
        return reject(0, "", why)
    if len(shop_id) > 64:
        return reject(0, "", "--shop is longer than 64 characters")
    zone = business_zone(business_tz)
    if len(data) > MAX_FILE_BYTES:
        return reject(0, "", f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: split it")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return reject(data[:exc.start].count(b"\n") + 1, "",
                      "not UTF-8 text: save it as \"CSV UTF-8 (Comma delimited)\" (Excel) or with UTF-8 "
                      "encoding (WPS, Numbers, LibreOffice); GBK exports are not accepted")
    records = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(records, None)
        if header is None:
            return reject(1, "", "the file is empty")
        columns = _check_header(header, report)
        if report.errors:
            return _rejected(report)
        rows = _read_rows(records, columns, zone, shop_id, now, report)
    except csv.Error as exc:
        return reject(records.line_num, "", f"not readable as CSV: {exc}")
    if not report.errors and report.rows == 0:
        report.errors.append(RowProblem(2, "", "the file has a header but no rows"))
    events = _events(rows, report)
    if report.errors:
        return _rejected(report)

    received_at = utc_iso(now)
    request_id = request_id or f"import:{report.sha256[:12]}"
    messages = []
    for group in events:
        body = message_body(channel, shop_id, file_name, report.sha256, business_tz,
                            [(r.row, values) for r, values in group])
        first = group[0][0].row
        try:
            CHANNEL.parse(body)  # what the status mapper will do with it
        except Malformed as exc:
            report.errors.append(RowProblem(first, "", exc.reason))
            continue
        message = IntakeMessage.wrap(CHANNEL_NAME, received_at, request_id, source_ip, {}, body)
        if len(message.model_dump_json().encode()) > MAX_MESSAGE_BYTES:
            report.errors.append(RowProblem(first, "", f"order {group[0][0].channel_order_id} is too large for one "
                                                       "message: split its lines over several files"))
            continue
        messages.append((first, message))
    if report.errors:
        return _rejected(report)
    report.events = len(messages)
    return PreparedImport(report, messages)


def _rejected(report: ImportReport) -> PreparedImport:
    report.errors.sort(key=lambda p: (p.row, COLUMNS.index(p.column) if p.column in COLUMNS else -1))
    return PreparedImport(report, [])


def _check_header(header: list[str], report: ImportReport) -> list[str]:
    columns = [h.strip().lower() for h in header]
    if len(columns) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        report.errors.append(RowProblem(1, "", "the header is one column: the file must be comma separated"))
        return columns
    seen: set[str] = set()
    for position, name in enumerate(columns, start=1):
        if not name:
            report.errors.append(RowProblem(1, "", f"column {position} has no name"))
        elif name in seen:
            report.errors.append(RowProblem(1, name, "appears twice in the header"))
        seen.add(name)
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            report.errors.append(RowProblem(1, name, "required column missing from the header"))
    unknown = [c for c in columns if c and c not in COLUMNS]
    if unknown:
        report.warnings.append(f"columns not in the contract, ignored (their values are not kept): "
                               f"{', '.join(unknown)}")
    return columns


def _read_rows(records: Any, columns: list[str], zone: Any, shop_id: str, now: datetime,
               report: ImportReport) -> list[tuple[ImportRow, dict[str, str]]]:
    rows: list[tuple[ImportRow, dict[str, str]]] = []
    latest = now + FUTURE_TOLERANCE
    for number, record in enumerate(records, start=2):
        if not any(cell.strip() for cell in record):
            continue  # a blank line (it still counts in the numbering, as in a spreadsheet)
        report.rows += 1
        if report.rows > MAX_ROWS:
            report.errors.append(RowProblem(number, "", f"more than {MAX_ROWS} rows: split the file"))
            return rows
        if len(record) > len(columns) and any(cell.strip() for cell in record[len(columns):]):
            report.errors.append(RowProblem(number, "", f"{len(record)} cells for {len(columns)} columns: a value "
                                                        "with a comma must be quoted"))
            continue
        values = {c: (record[i] if i < len(record) else "") for i, c in enumerate(columns)}
        row, problems = read_row(number, values, zone, shop_id)
        if row is not None and not row.known_type:
            problems.append(RowProblem(number, "event_type", f"{row.event_type!r} is not one of "
                                                             f"{', '.join(STATUS_MAP)}"))
        if row is not None and row.event_time > latest:
            problems.append(RowProblem(number, "event_time", "is in the future (check the year and the time "
                                                             "zone offset)"))
        elif row is not None and row.event_time < EARLIEST_CHANNEL_TIME:
            problems.append(RowProblem(number, "event_time", f"is {channel_time_refusal(row.event_time, now)}"))
        report.errors.extend(problems)
        if row is not None:
            rows.append((row, values))  # with problems too: checked against the other lines of its order
    return rows


def _events(rows: list[tuple[ImportRow, dict[str, str]]],
            report: ImportReport) -> list[list[tuple[ImportRow, dict[str, str]]]]:
    """One order event per row, except the rows of one `created` order, which make one together."""
    created: dict[str, list[tuple[ImportRow, dict[str, str]]]] = {}
    events: list[list[tuple[ImportRow, dict[str, str]]]] = []
    for row, values in rows:
        if row.event_type == "created":
            group = created.get(row.channel_order_id)
            if group is None:
                created[row.channel_order_id] = group = []
                events.append(group)
            group.append((row, values))
        else:
            events.append([(row, values)])
    unreadable = {(p.row, p.column) for p in report.errors}
    for group in created.values():
        report.errors.extend(check_group([r for r, _ in group], unreadable))
    return events


def run_import(data: bytes, *, file_name: str, channel: str, shop_id: str, business_tz: str, now: datetime,
               sender: BatchSender, request_id: str = "", source_ip: str = "",
               sleep: Callable[[float], None] = time.sleep) -> ImportReport:
    prepared = prepare_import(data, file_name=file_name, channel=channel, shop_id=shop_id,
                              business_tz=business_tz, now=now, request_id=request_id, source_ip=source_ip)
    report = prepared.report
    if report.errors:
        report.status = REJECTED
        return report
    sent, stopped_at, reason = send_messages(prepared.messages, sender, sleep)
    report.enqueued = sent
    if stopped_at is not None:
        report.status = INCOMPLETE
        report.failure = reason
        report.first_unsent_row = stopped_at
        return report
    report.status = ENQUEUED
    return report


def send_messages(items: Sequence[tuple[int, IntakeMessage]], sender: BatchSender,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[int, int | None, str]:
    """Send in batches, retrying failed entries; stop at the first batch that still fails.

    Returns (messages sent, the reference of the first message not sent or None, why).
    """

    def send(messages: Sequence[IntakeMessage]) -> Failures:
        try:
            return sender.send_batch(messages)
        except Exception as exc:  # the whole call failed (after the SDK's own retries): worth trying again
            return {n: (f"{type(exc).__name__}: {exc}", True) for n in range(len(messages))}

    sent = 0
    for batch in batches(items, itemgetter(1)):
        unsent = send_with_retries(send, [message for _, message in batch], attempts=SEND_ATTEMPTS,
                                   backoff_s=0.2, max_backoff_s=5.0, sleep=sleep)
        sent += len(batch) - len(unsent)
        if unsent:
            return sent, min(batch[i][0] for i in unsent), next(iter(unsent.values()))[0]
    return sent, None, ""
