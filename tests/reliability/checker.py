"""A Jepsen-style checker: what was sent (the history) against what the hub holds and delivered.

Counts, for a scenario:
- lost: channel events whose event-log entry is missing, orders missing, and domain events a
  subscriber should have received (by its pattern, from the outbox: the orders table's stream)
  but did not;
- duplicated: side effects that happened twice: order versions beyond the log entries that
  changed the order (an event applied twice makes a new version, so a new domain event);
- unexpected: log entries, orders or deliveries no sent event explains;
- redelivered: the same Idempotency-Key received again (at-least-once delivery, absorbed by a
  receiver that dedupes on the key; reported, and zero where a scenario demands it).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderhub.bus.domain_events import events_for_stream_record
from orderhub.clock import utc_iso
from orderhub.lifecycle.machine import hub_order_id
from orderhub.store.orders import WAYBILL_PREFIX


@dataclass
class Tally:
    scenario: str
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    redelivered: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> str:
        notes = "; ".join(f"{k} {v}" for k, v in self.notes.items())
        return (f"{self.scenario:<44} {self.sent:>7} {self.lost:>5} {self.duplicated:>11} {self.unexpected:>11} "
                f"{self.redelivered:>12}  {notes}")


HEADER = f"{'scenario':<44} {'sent':>7} {'lost':>5} {'duplicated':>11} {'unexpected':>11} {'redelivered':>12}  notes"
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
            out.append({"source": "orderhub.orders", "detail-type": entry.detail_type,
                        "detail": json.loads(entry.detail.model_dump_json())})
    return out


def matches(pattern: dict, event: dict) -> bool:
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def check_mall_history(tally: Tally, sent_events: list[dict], ddb: Any, tables: dict[str, str]) -> dict[str, dict]:
    """Log entries and orders against the distinct mall events sent. Returns the orders by id."""
    log = [i for i in _scan(ddb, tables["order-events"]) if not i["order_id"]["S"].startswith(WAYBILL_PREFIX)]
    orders = {i["order_id"]["S"]: i for i in _scan(ddb, tables["orders"])}
    expected: dict[tuple[str, str], dict] = {}
    for event in {e["event_id"]: e for e in sent_events}.values():
        order_id = hub_order_id("mall", event["order"]["order_no"])
        at = utc_iso(datetime.fromisoformat(event["event_time"]))
        expected[(order_id, f"{at}#{event['event_id']}")] = event
    present = {(i["order_id"]["S"], i["event_key"]["S"]) for i in log}
    tally.sent = len(expected)
    missing_orders = {k[0] for k in expected} - set(orders)
    tally.lost += len(set(expected) - present) + len(missing_orders)
    tally.unexpected += len(present - set(expected)) + len(set(orders) - {k[0] for k in expected})
    changes = Counter(i["order_id"]["S"] for i in log if i["outcome"]["S"] in ("applied", "status_held"))
    tally.duplicated += sum(max(0, int(o["version"]["N"]) - changes[oid]) for oid, o in orders.items())
    return orders


def check_deliveries(tally: Tally, outbox: list[dict], subscribers: dict[str, dict], inboxes: dict[str, Any]) -> None:
    """Every outbox event a subscriber's pattern selects reached it; nothing else did."""
    for name, pattern in subscribers.items():
        want = {e["detail"]["event_id"] for e in outbox if matches(pattern, e)}
        got = inboxes[name].keys
        tally.lost += len(want - set(got))
        tally.unexpected += len(set(got) - want)  # a key no order change explains
        tally.redelivered += sum(n - 1 for n in got.values())
        tally.notes[f"{name} delivered"] = f"{len(set(got) & want)}/{len(want)}"
