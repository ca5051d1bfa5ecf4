"""Status mapping: an intake message becomes merged facts on one canonical order, logged.

For each normalised event: find its order, read it, merge, append the event to the order's log
(its key makes a redelivered event a no-op), then write the order back if it changed,
conditional on the version read. A crash between the two writes is repaired by the
redelivery: the log entry is already there, the merge is idempotent, so the order write
happens then. The order write is what the stream turns into domain events; an unchanged order
is not written, so a duplicate produces no event.

Codes a channel's table does not know (gaps) and payload fields its schema does not know
(drift) are counted per channel for the reports; the event's known facts still apply.

Money (PAY-1/2): the ledger records an event adds to its order are booked in the payment voucher
ledger *before* the order that lists them is written, each with a conditional put on its record id. A
crash between the two is repaired by the redelivery like the log (the records are there, booking them
again writes nothing, the order write follows); a record the ledger already holds with other money
stays as first booked, and the order takes the ledger's version.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from orderhub.channels import get_channel
from orderhub.channels.base import NO_RULES
from orderhub.clock import Clock
from orderhub.intake import SettingsSource, event_time_refusal
from orderhub.lifecycle.machine import event_iso, event_update, hub_order_id, refused_kinds, utc_iso_fast, with_ledger
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import LedgerLine, Order, OrderEvent, updated
from orderhub.payments.ledger import InMemoryLedger, Ledger, LedgerRecord, same_money
from orderhub.store.orders import ConflictError, EventLogEntry, LogWrite, OrderStore, epoch_seconds

MAX_CONFLICT_RETRIES = 8
DEFAULT_LOG_RETENTION_DAYS = 5 * 365
_RETENTION_DAYS = int(os.environ.get("EVENT_LOG_RETENTION_DAYS", DEFAULT_LOG_RETENTION_DAYS))
_RETENTION_SECONDS = int(timedelta(days=_RETENTION_DAYS).total_seconds())


class OrderNotFound(LookupError):
    """The event names an order the hub has not seen yet (a carrier callback before the waybill).

    Raised so the intake message is retried later and, if the order never appears, parked in
    the DLQ with an alarm: never dropped.
    """


class HealthRecorder(Protocol):
    def record(self, channel: str, drift: tuple[str, ...], gaps: tuple[str, ...], event_id: str, at: str) -> None: ...




@dataclass(frozen=True)
class MappingOutcome:
    order_id: str
    outcome: str  # applied | duplicate | conflict | no_change | unmapped | status_held | refused
    status_before: str | None
    status_after: str | None


class NoLedger:
    """A ledger that refuses to book: for a mapper given none, an event that moves money fails loudly (and
    is retried, then parked) instead of writing an order whose money no ledger holds."""

    def book(self, records: Sequence[LedgerRecord]) -> dict[str, LedgerLine]:
        raise RuntimeError("money moved but the mapper has no ledger to book it in")


def map_message(message: IntakeMessage, store: OrderStore, clock: Clock,
                settings_for: SettingsSource | None = None, health: HealthRecorder | None = None,
                ledger: Ledger | NoLedger | None = None) -> list[MappingOutcome]:
    events: Sequence[OrderEvent]
    refusals: dict[int, str] = {}
    if message.events is not None:
        events = message.events  # parsed at the edge, times checked there
    else:  # not parsed at the edge: a replay, a pulled order, an imported row
        channel = get_channel(message.channel)
        if settings_for is not None:  # the channel's settings: its field rules, its options
            events = channel.parse_with(message.body, message.headers, settings_for(channel.name))
        else:
            events = channel.parse(message.body, message.headers, NO_RULES)
        # Nobody to answer 400 to: an event whose time is outside the window is logged as refused, and
        # the message's other events (a pulled page holds several orders) still apply.
        now = clock.now()
        refusals = {i: r for i, event in enumerate(events) if (r := event_time_refusal(event, now)) is not None}
    outcomes = []
    for i, event in enumerate(events):
        if health is not None and (event.drift or event.gaps):
            health.record(event.reporter, event.drift, event.gaps, event.event_id, message.received_at)
        outcomes.append(apply_to_store(event, message, store, clock, refusals.get(i), ledger))
    return outcomes


def target_order_id(event: OrderEvent, store: OrderStore) -> str:
    if event.order_id:
        return event.order_id
    if event.channel_order_id:
        return hub_order_id(event.channel, event.channel_order_id)
    assert event.logistics is not None  # the model insists on one of the three
    found = store.order_of_waybill(event.logistics.tracking_no)
    if found is None:
        raise OrderNotFound(f"no order has waybill {event.logistics.tracking_no} yet")
    return found


def _waybills(order: Order) -> set[str]:
    numbers = {p.tracking_no for p in order.packages.values() if p.tracking_no}
    if order.tracking_no:
        numbers.add(order.tracking_no)
    return numbers


def apply_to_store(event: OrderEvent, message: IntakeMessage, store: OrderStore, clock: Clock,
                   refusal: str | None = None, ledger: Ledger | NoLedger | None = None) -> MappingOutcome:
    """Merge the event into its order and log it; an event `refusal` names (a time outside the window) is
    only logged, with the reason, and changes nothing."""
    order_id = target_order_id(event, store)
    if refusal is not None:
        current = store.get_order(order_id)
        before = current.status._value_ if current else None
        store.append_event(_entry(order_id, event, message, clock, "refused", before, before, refusal))
        return MappingOutcome(order_id, "refused", before, before)
    logged = False
    for _ in range(MAX_CONFLICT_RETRIES):
        current = store.get_order(order_id)
        if current is None and not event.channel_order_id:
            raise OrderNotFound(f"order {order_id} is not in the hub yet")
        before = current.status._value_ if current else None  # `.value` is a Python-level property
        base, update, transition = event_update(current, event, order_id)
        # Every entry of the update is a change, and an event that carries no facts changes nothing
        # (never creates an order).
        changed = bool(update)
        outcome, note = _outcome(event, changed, transition.held_back_from)
        if not logged:
            logged = True
            written = store.append_event(
                _entry(order_id, event, message, clock, outcome, before, transition.after._value_, note))
            if written is LogWrite.CONFLICT and message.replay_of is None:
                # The channel re-used an event id (same time) for other facts: the first stays the record;
                # this one is counted and reported (Events_conflict), never merged silently. A replay
                # re-reads a kept body (perhaps with a corrected parser) and applies as before.
                return MappingOutcome(order_id, "conflict", before, before)
            if written is not LogWrite.NEW and not changed:
                return MappingOutcome(order_id, "duplicate", before, before)
        if not changed:
            return MappingOutcome(order_id, outcome, before, before)

        now = utc_iso_fast(clock.now())
        version = current.version if current else 0
        stored = updated(base, {
            **update,
            "version": version + 1,
            "created_in_hub_at": current.created_in_hub_at if current else now,
            "updated_in_hub_at": now,
        })
        # Link new waybills before the order write: a carrier callback that finds the waybill
        # then always finds the order's facts too (or is retried until it does).
        for tracking_no in _waybills(stored) - (_waybills(current) if current else set()):
            store.link_waybill(tracking_no, order_id, _expiry(clock))
        # Book new ledger records before the order lists them (the same reasoning as the waybills).
        if "ledger" in update:
            stored = _book(stored, current, event, message, _ledger_of(store, ledger), now)
        try:
            store.put_order(stored, expected_version=version)
        except ConflictError:
            continue  # another event of this order won the race: merge again on top of it
        return MappingOutcome(order_id, outcome, before, stored.status._value_)
    raise ConflictError(f"{order_id}: still conflicting after {MAX_CONFLICT_RETRIES} attempts")


def _ledger_of(store: OrderStore, ledger: Ledger | NoLedger | None) -> Ledger | NoLedger:
    if ledger is not None:
        return ledger
    return store if isinstance(store, InMemoryLedger) else NoLedger()


def _book(stored: Order, current: Order | None, event: OrderEvent, message: IntakeMessage,
          ledger: Ledger | NoLedger, now: str) -> Order:
    known = current.ledger if current is not None else {}
    new = [line for record_id, line in stored.ledger.items() if record_id not in known]
    if not new:
        return stored
    facts = {(f.provider, f.kind, f.reference, f.state): f for f in event.money}
    records = []
    for line in new:
        fact = facts.get((line.provider, line.kind, line.reference, line.state))
        if not line.currency and stored.currency:  # a platform's refund report: the order's currency
            line = line.model_copy(update={"currency": stored.currency})
        records.append(LedgerRecord(
            line=line, order_id=stored.order_id, channel=stored.channel, channel_order_id=stored.channel_order_id,
            source=event.reporter, source_event_id=event.event_id, booked_at=now,
            account=fact.account if fact is not None else "", payload=fact.payload if fact is not None else "",
            actor=fact.actor if fact is not None else ""))
    held = ledger.book(records)
    differing = {rid: line for rid, line in held.items() if not same_money(line, stored.ledger[rid])}
    if not differing:
        return stored
    # Reported before with other money: the first booking stands, and so it does on the order.
    return with_ledger(stored, {**stored.ledger, **differing})


def _outcome(event: OrderEvent, changed: bool, held_back_from: object) -> tuple[str, str]:
    notes = []
    if event.gaps:
        notes.append(f"no mapping for {event.reporter} {', '.join(event.gaps)}")
    refused = refused_kinds(event)
    if refused:
        notes.append(f"{event.reporter} may not report {', '.join(refused)}; ignored")
    if held_back_from is not None:
        notes.append(f"facts say {held_back_from}; status never moves back")
        return "status_held", "; ".join(notes)
    if changed:
        return "applied", "; ".join(notes)
    if refused:
        return "refused", "; ".join(notes)
    if event.gaps:
        # Nothing known came with it: the order keeps its last good status.
        return "unmapped", "; ".join(notes)
    return "no_change", "; ".join(notes)


def _expiry(clock: Clock) -> int:
    return epoch_seconds(clock.now()) + _RETENTION_SECONDS


def _entry(order_id: str, event: OrderEvent, message: IntakeMessage, clock: Clock, outcome: str,
           before: str | None, after: str | None, note: str) -> EventLogEntry:
    event_time = event_iso(event.event_time)
    source = event.reporter
    # Event ids are unique per reporter: a warehouse's id must not collide with the shop's.
    log_id = event.event_id if source == event.channel else f"{source}:{event.event_id}"
    return EventLogEntry(
        order_id=order_id,
        event_key=EventLogEntry.key_for(event_time, log_id),
        channel=source,
        channel_event_id=event.event_id,
        channel_code=event.channel_code,
        kind="+".join(event.kinds) or None,
        event_time=event_time,
        received_at=message.received_at,
        outcome=outcome,
        status_before=before,
        status_after=after,
        note=note,
        raw_body=message.body,
        raw_headers=message.headers,
        expires_at=_expiry(clock),
        facts=facts_digest(event),
    )


def facts_digest(event: OrderEvent) -> str:
    """What the event says, as a digest: drift is left out (it depends on the field rules of the day)."""
    return hashlib.blake2b(event.model_dump_json(exclude=_NOT_FACTS).encode(), digest_size=12).hexdigest()


_NOT_FACTS: set[str] = {"drift"}
