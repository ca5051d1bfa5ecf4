"""Status mapping: an intake message becomes merged facts on one canonical order, logged.

For each normalised event: read the order, merge, append the event to the order's log (its
key makes a redelivered event a no-op), then write the order back if it changed, conditional
on the version read. A crash between the two writes is repaired by the redelivery: the log
entry is already there, the merge is idempotent, so the order write happens then.
The order write is what the stream turns into domain events; an unchanged order is not
written, so a duplicate produces no event.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from orderhub.channels import get_channel
from orderhub.clock import Clock, utc_iso
from orderhub.lifecycle.machine import apply_event, hub_order_id
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import OrderEvent
from orderhub.store.orders import ConflictError, EventLogEntry, OrderStore, epoch_seconds

MAX_CONFLICT_RETRIES = 8
DEFAULT_LOG_RETENTION_DAYS = 5 * 365


@dataclass(frozen=True)
class MappingOutcome:
    order_id: str
    outcome: str  # applied | duplicate | no_change | unmapped | status_held
    status_before: str | None
    status_after: str | None


def map_message(message: IntakeMessage, store: OrderStore, clock: Clock) -> list[MappingOutcome]:
    channel = get_channel(message.channel)
    events = channel.parse(message.body, message.headers)
    return [apply_to_store(event, message, store, clock) for event in events]


def apply_to_store(event: OrderEvent, message: IntakeMessage, store: OrderStore, clock: Clock) -> MappingOutcome:
    order_id = hub_order_id(event.channel, event.channel_order_id)
    logged = False
    for _ in range(MAX_CONFLICT_RETRIES):
        current = store.get_order(order_id)
        before = current.status.value if current else None
        if event.kind is None:
            # A code with no mapping: logged as a gap, the order keeps its last good status.
            new = store.append_event(_entry(order_id, event, message, clock, "unmapped", before, before,
                                            f"no mapping for {event.channel} code {event.channel_code!r}"))
            return MappingOutcome(order_id, "unmapped" if new else "duplicate", before, before)

        merged, transition = apply_event(current, event)
        # The merge starts from `current`, bookkeeping included, so plain equality means "no change".
        changed = merged != current
        if transition.held_back_from is not None:
            outcome, note = "status_held", f"facts say {transition.held_back_from}; status never moves back"
        else:
            outcome, note = ("applied" if changed else "no_change"), ""
        if not logged:
            logged = True
            first_time = store.append_event(
                _entry(order_id, event, message, clock, outcome, before, transition.after.value, note))
            if not first_time and not changed:
                return MappingOutcome(order_id, "duplicate", before, before)
        if not changed:
            return MappingOutcome(order_id, outcome, before, before)

        now = utc_iso(clock.now())
        version = current.version if current else 0
        stored = merged.model_copy(update={
            "version": version + 1,
            "created_in_hub_at": current.created_in_hub_at if current else now,
            "updated_in_hub_at": now,
        })
        try:
            store.put_order(stored, expected_version=version)
        except ConflictError:
            continue  # another event of this order won the race: merge again on top of it
        return MappingOutcome(order_id, outcome, before, stored.status.value)
    raise ConflictError(f"{order_id}: still conflicting after {MAX_CONFLICT_RETRIES} attempts")


def _entry(order_id: str, event: OrderEvent, message: IntakeMessage, clock: Clock, outcome: str,
           before: str | None, after: str | None, note: str) -> EventLogEntry:
    event_time = utc_iso(event.event_time)
    retention = int(os.environ.get("EVENT_LOG_RETENTION_DAYS", DEFAULT_LOG_RETENTION_DAYS))
    return EventLogEntry(
        order_id=order_id,
        event_key=EventLogEntry.key_for(event_time, event.event_id),
        channel=event.channel,
        channel_event_id=event.event_id,
        channel_code=event.channel_code,
        kind=event.kind.value if event.kind else None,
        event_time=event_time,
        received_at=message.received_at,
        outcome=outcome,
        status_before=before,
        status_after=after,
        note=note,
        raw_body=message.body,
        raw_headers=message.headers,
        expires_at=epoch_seconds(clock.now() + timedelta(days=retention)),
    )
