"""What operators do with exceptions (the API): list them, read one, acknowledge, resolve with a note.

Lists are ordered by SLA deadline, the nearest (most overdue) first; `order=latest` reverses it
(e.g. the latest resolved). Each exception carries its countdown: `sla_remaining_s` (negative
once overdue) as of the request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderhub.clock import utc_iso
from orderhub.exceptions.model import (
    UNRESOLVED,
    ExceptionNotFound,
    ExceptionRecord,
    ExceptionState,
    ExceptionType,
    parse_exception_id,
)
from orderhub.store.exceptions import ExceptionStore

MAX_LIMIT = 500
Operator = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["unresolved", "open", "acknowledged", "resolved"] = "unresolved"
    type: ExceptionType | None = None
    order: Literal["nearest", "latest"] = "nearest"  # by SLA deadline
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 100


class AcknowledgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Operator


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Operator
    note: Note


class ExceptionView(ExceptionRecord):
    sla_remaining_s: int  # seconds to the SLA deadline as of the request; negative: overdue
    overdue: bool  # unresolved and past the deadline


class ExceptionList(BaseModel):
    exceptions: list[ExceptionView]
    count: int
    truncated: bool  # more matched than `limit`
    state: str
    order: str


def view(record: ExceptionRecord, now: datetime) -> ExceptionView:
    remaining = int((datetime.fromisoformat(record.sla_deadline) - now).total_seconds())
    return ExceptionView(**record.model_dump(exclude={"exception_id"}), sla_remaining_s=remaining,
                         overdue=record.unresolved and remaining < 0)


def list_exceptions(store: ExceptionStore, query: ListQuery, now: datetime) -> ExceptionList:
    states = UNRESOLVED if query.state == "unresolved" else (ExceptionState(query.state),)
    nearest = query.order == "nearest"
    found: list[ExceptionRecord] = []
    truncated = False
    for state in states:
        records, more = store.in_state(state, of_type=query.type, limit=query.limit, nearest_first=nearest)
        found += records
        truncated |= more
    found.sort(key=lambda r: (r.sla_deadline, r.exception_id), reverse=not nearest)
    truncated |= len(found) > query.limit
    shown = [view(r, now) for r in found[:query.limit]]
    return ExceptionList(exceptions=shown, count=len(shown), truncated=truncated, state=query.state,
                         order=query.order)


def _key(exception_id: str) -> tuple[str, str]:
    parsed = parse_exception_id(exception_id)
    if parsed is None:
        raise ExceptionNotFound(exception_id)
    return parsed


def find(store: ExceptionStore, exception_id: str) -> ExceptionRecord:
    record = store.get(*_key(exception_id))
    if record is None:
        raise ExceptionNotFound(exception_id)
    return record


def acknowledge(store: ExceptionStore, exception_id: str, body: AcknowledgeBody, now: datetime) -> ExceptionRecord:
    """Raises ExceptionNotFound, or WrongState unless it is open."""
    return store.acknowledge(*_key(exception_id), by=body.by, at=utc_iso(now))


def resolve(store: ExceptionStore, exception_id: str, body: ResolveBody, now: datetime) -> ExceptionRecord:
    """Raises ExceptionNotFound, or WrongState when it is resolved already."""
    return store.resolve(*_key(exception_id), by=body.by, note=body.note, at=utc_iso(now))
