"""A Jepsen-style checker: what was sent (the history) against what the hub holds and delivered.

"Expected" comes from what was sent (tests/reliability/oracle.py), never from the hub's own
stream. Counts, for a scenario:
- lost: channel events whose event-log entry is missing, orders missing, order updates lost
  (an order whose version is behind its log: fewer versions than log entries that changed it,
  or fewer log entries that changed it than sent events that must), and domain events a
  subscriber should have received but did not: one per expected change its pattern selects,
  whether or not the change ever reached the orders table;
- duplicated: side effects that happened twice: order versions beyond the log entries that
  changed the order (an event applied twice makes a new version, so a new domain event);
- unexpected: log entries, orders or deliveries no sent event explains;
- diverged: orders whose fields differ from the merge of the events sent for them;
- redelivered: the same Idempotency-Key received again (at-least-once delivery, absorbed by a
  receiver that dedupes on the key; reported, and zero where a scenario demands it).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderhub.bus.domain_events import event_id, events_for_change, events_for_stream_record
from orderhub.clock import utc_iso
from orderhub.lifecycle.machine import hub_order_id
from orderhub.store.order_item import order_from_item
from orderhub.store.orders import WAYBILL_PREFIX
from reliability.oracle import ExpectedOrder, differing_fields, expected_mall_orders


@dataclass
class Tally:
    scenario: str
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    diverged: int = 0
    redelivered: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> str:
        notes = "; ".join(f"{k} {v}" for k, v in self.notes.items())
        return (f"{self.scenario:<44} {self.sent:>7} {self.lost:>5} {self.duplicated:>11} {self.unexpected:>11} "
                f"{self.diverged:>9} {self.redelivered:>12}  {notes}")

    @property
    def anomalies(self) -> tuple[int, int, int, int]:
        """(lost, duplicated, unexpected, diverged): all zero when nothing went wrong."""
        return self.lost, self.duplicated, self.unexpected, self.diverged


HEADER = (f"{'scenario':<44} {'sent':>7} {'lost':>5} {'duplicated':>11} {'unexpected':>11} {'diverged':>9} "
          f"{'redelivered':>12}  notes")
TALLIES: list[Tally] = []


def _scan(ddb: Any, table: str) -> list[dict]:
    items: list[dict] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def stream_records(streams: Any, stream_arn: str) -> list[dict]:
    """Every record of the stream from the start, in shard order, shaped as Lambda delivers them."""
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            reply = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += reply["Records"]
            if not reply["Records"]:
                break
            iterator = reply.get("NextShardIterator")
    return records


def outbox_events(streams: Any, stream_arn: str) -> list[dict]:
    """The domain events the orders table's changes stand for, as EventBridge events."""
    out = []
    for record in stream_records(streams, stream_arn):
        record["dynamodb"].pop("ApproximateCreationDateTime", None)
        for entry in events_for_stream_record(record):
            out.append({"source": entry.source, "detail-type": entry.detail_type,
                        "detail": json.loads(entry.detail.model_dump_json())})
    return out


def matches(pattern: dict, event: dict) -> bool:
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


@dataclass
class HubState:
    """The hub's tables as read after a scenario, and the changes the sent events call for."""

    orders: dict[str, dict]  # order id -> stored item
    expected: dict[str, ExpectedOrder]  # order id -> what the sent events give
    changes: dict[str, int]  # order id -> the versions it must have (its expected changes)


def check_mall_history(tally: Tally, sent_events: list[dict], ddb: Any, tables: dict[str, str]) -> HubState:
    """Log entries and orders against the distinct mall events sent."""
    log = [i for i in _scan(ddb, tables["order-events"]) if not i["order_id"]["S"].startswith(WAYBILL_PREFIX)]
    orders = {i["order_id"]["S"]: i for i in _scan(ddb, tables["orders"])}
    expected_entries: dict[tuple[str, str], dict] = {}
    for event in {e["event_id"]: e for e in sent_events}.values():
        order_id = hub_order_id("mall", event["order"]["order_no"])
        at = utc_iso(datetime.fromisoformat(event["event_time"]))
        expected_entries[(order_id, f"{at}#{event['event_id']}")] = event
    present = {(i["order_id"]["S"], i["event_key"]["S"]) for i in log}
    tally.sent = len(expected_entries)
    missing_orders = {k[0] for k in expected_entries} - set(orders)
    tally.lost += len(set(expected_entries) - present) + len(missing_orders)
    tally.unexpected += len(present - set(expected_entries)) + len(set(orders) - {k[0] for k in expected_entries})

    expected = expected_mall_orders(sent_events)
    logged = Counter(i["order_id"]["S"] for i in log if i["outcome"]["S"] in ("applied", "status_held"))
    behind = beyond = log_short = 0
    diverged: Counter[str] = Counter()
    changes = {}
    for order_id, want in expected.items():
        # Every log entry that changed the order made one version; every event that must change
        # it made one log entry that says so.
        changes[order_id] = max(logged[order_id], want.must_change)
        item = orders.get(order_id)
        if item is None:
            continue
        version = int(item["version"]["N"])
        behind += max(0, logged[order_id] - version)
        beyond += max(0, version - logged[order_id])
        log_short += max(0, want.must_change - logged[order_id])
        fields = differing_fields(want, order_from_item(item))
        if fields:
            tally.diverged += 1
            diverged.update(fields)
    tally.lost += behind + log_short
    tally.duplicated += beyond
    if behind or log_short:
        tally.notes["updates lost (versions behind the log, log entries short of the events)"] = (behind, log_short)
    if diverged:
        tally.notes["fields that differ"] = dict(diverged.most_common(5))
    return HubState(orders, expected, changes)


def _stand_in_events(want: ExpectedOrder, version: int) -> list[dict]:
    """Domain events for a change the orders table never got (a lost update): the ones it would have
    published, the expected final state standing in for the state at that version."""
    entries = events_for_change(None, want.order.model_copy(update={"version": version}))
    events = [_as_bus_event(e.detail_type, json.loads(e.detail.model_dump_json())) for e in entries]
    if version == 1:
        return events
    changed = events[1]
    updated = {**changed, "detail-type": "OrderUpdated",
               "detail": {**changed["detail"], "event_id": event_id(want.order.order_id, version, "OrderUpdated")}}
    return [changed, updated]


def _as_bus_event(detail_type: str, detail: dict) -> dict:
    return {"source": "orderhub.orders", "detail-type": detail_type, "detail": detail}


def check_deliveries(tally: Tally, state: HubState, outbox: list[dict], subscribers: dict[str, dict],
                     inboxes: dict[str, Any]) -> None:
    """Each expected change (order, version) reached each subscriber whose pattern selects it, once.

    The versions come from the expected changes; the outbox only tells what a version that was
    written looks like (which domain events it stands for). A version never written is lost for
    every subscriber that would have wanted it.
    """
    written: dict[tuple[str, int], list[dict]] = {}
    for event in outbox:
        key = (event["detail"]["order_id"], event["detail"]["order_version"])
        written.setdefault(key, []).append(event)
    for name, pattern in subscribers.items():
        want: set[str] = set()
        for order_id, count in state.changes.items():
            for version in range(1, count + 1):
                events = written.get((order_id, version))
                if events is not None:
                    want.update(e["detail"]["event_id"] for e in events if matches(pattern, e))
                    continue
                candidates = [e for e in _stand_in_events(state.expected[order_id], version) if matches(pattern, e)]
                # v1 is two events; a later version is one of the two kinds, whichever the pattern takes
                want.update(e["detail"]["event_id"] for e in (candidates if version == 1 else candidates[:1]))
        got = inboxes[name].keys
        tally.lost += len(want - set(got))
        tally.unexpected += len(set(got) - want)  # a key no expected change explains
        tally.redelivered += sum(n - 1 for n in got.values())
        tally.notes[f"{name} delivered"] = f"{len(set(got) & want)}/{len(want)}"
