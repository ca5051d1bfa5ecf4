"""The ledger's records as JSON lines: a file finance keeps beside a statement, and reconciles it with by hand.

`orderhub ledger export DATE` writes a business day's records (with the other records of the orders they
name, as `payments.journal.day_records` reads them) and `orderhub recon try` reads them back; this module is
the format both use. One record per line, a JSON object of every field of the record but the provider's
payload (which may hold a buyer's details and is not needed to match money): `record_id` first, then the
order it belongs to, the line's own fields (money in integer minor units, times as stored: UTC ISO with
offset) and who reported and recorded it. Lines are sorted by record id (then order), keys are in a fixed
order, text is UTF-8 as written (not \\u-escaped), so a day exported twice is the same bytes and a person can
read and diff it.

Reading is exact or nothing, like a statement: a line that is not a JSON object, names a field this format
does not have, gives money as anything but an integer, an unknown kind, state or method, or a `record_id`
that is not the one its fields make, refuses the whole file with its line number and the reason
(`LedgerExportRefused`). Fields with a default (fee, references, note, who) may be left out of a line
written by hand. Blank lines and a leading byte order mark are allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from orderhub.models.order import LedgerLine
from orderhub.payments.ledger import LedgerRecord

# The record's own fields around its line, in the order a line is written; the payload is left out.
ORDER_FIELDS = ("order_id", "channel", "channel_order_id")
LINE_FIELDS = tuple(LedgerLine.model_fields)
WHO_FIELDS = ("source", "source_event_id", "booked_at", "account", "actor")
REQUIRED = ("order_id", "channel_order_id", "provider", "kind", "reference", "state", "amount", "currency",
            "method", "occurred_at", "business_date")
KNOWN = frozenset(("record_id", *ORDER_FIELDS, *LINE_FIELDS, *WHO_FIELDS))


class LedgerExportRefused(ValueError):
    """A ledger export that cannot be read whole: which line, and why. Nothing of it is used."""

    def __init__(self, line_no: int, reason: str) -> None:
        super().__init__(f"ledger export line {line_no}: {reason}")
        self.line_no, self.reason = line_no, reason


def record_object(record: LedgerRecord) -> dict[str, Any]:
    """One record as the export writes it (every field but the payload, in the format's order)."""
    line = record.line.model_dump(mode="json")
    return {"record_id": record.record_id, **{f: getattr(record, f) for f in ORDER_FIELDS},
            **{f: line[f] for f in LINE_FIELDS}, **{f: getattr(record, f) for f in WHO_FIELDS}}


def write_records(records: Iterable[LedgerRecord]) -> bytes:
    """The records as JSON lines (UTF-8, "\\n" after each), sorted by record id, then order id."""
    ordered = sorted(records, key=lambda r: (r.record_id, r.order_id))
    return "".join(json.dumps(record_object(r), ensure_ascii=False, separators=(",", ":")) + "\n"
                   for r in ordered).encode()


def read_records(data: bytes) -> list[LedgerRecord]:
    """The records of an export, in the file's order (payloads ""), or `LedgerExportRefused`."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise LedgerExportRefused(data.count(b"\n", 0, exc.start) + 1, "not UTF-8") from None
    records: list[LedgerRecord] = []
    seen: dict[tuple[str, str], int] = {}
    for line_no, row in enumerate(text.split("\n"), start=1):
        if not row.strip():
            continue
        record = _record(line_no, row)
        key = (record.order_id, record.record_id)
        if key in seen:
            raise LedgerExportRefused(line_no, f"record {record.record_id} of {record.order_id} again "
                                               f"(also line {seen[key]})")
        seen[key] = line_no
        records.append(record)
    return records


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"field {key!r} twice")
        found[key] = value
    return found


def _record(line_no: int, row: str) -> LedgerRecord:
    try:
        fields = json.loads(row, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except ValueError as exc:  # json.JSONDecodeError is one; the hooks raise the others
        raise LedgerExportRefused(line_no, f"not a JSON object: {exc}") from None
    if not isinstance(fields, dict):
        raise LedgerExportRefused(line_no, "not a JSON object")
    unknown = sorted(set(fields) - KNOWN)
    if unknown:
        raise LedgerExportRefused(line_no, f"no such field: {', '.join(unknown)}")
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        raise LedgerExportRefused(line_no, f"without {', '.join(missing)}")
    text_fields = [f for f in (*ORDER_FIELDS, *WHO_FIELDS) if not isinstance(fields.get(f, ""), str)]
    if text_fields:
        raise LedgerExportRefused(line_no, f"not text: {', '.join(text_fields)}")
    try:
        # Strict, from JSON: money must be an integer ("258", 258.0 and true are refused), enums their values.
        line = LedgerLine.model_validate_json(json.dumps({f: fields[f] for f in LINE_FIELDS if f in fields}),
                                              strict=True)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise LedgerExportRefused(line_no, f"{where}: {error['msg']}") from None
    given = fields.get("record_id")
    if given is not None and given != line.record_id:
        raise LedgerExportRefused(line_no, f"record_id {str(given)[:120]!r} is not the one its fields make "
                                           f"({line.record_id})")
    return LedgerRecord(line=line, order_id=fields["order_id"], channel=fields.get("channel", ""),
                        channel_order_id=fields["channel_order_id"], source=fields.get("source", ""),
                        source_event_id=fields.get("source_event_id", ""), booked_at=fields.get("booked_at", ""),
                        account=fields.get("account", ""), actor=fields.get("actor", ""))
