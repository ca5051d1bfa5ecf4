"""Channel health (ING-7, ST-1): schema drift and mapping gaps, counted per channel.

One event is at most one write. Its unknown field paths (drift) and unmapped codes (gaps), the
first `MAX_LISTED_PER_EVENT` of each and how many more there were, are one *set*; the
`channel-health` table holds one item per (channel, set): pk `channel`, sk `entry` =
`set#<hash of the set>`, with the set (`drift`, `gaps`: lists of text), `count`, `first_seen`,
`last_seen` (hub clock, UTC ISO), `last_event_id` (an example to look up in the order's
timeline) and `more_drift`/`more_gaps` (paths and codes beyond the listed ones, summed).

The write is one UpdateItem (ADD count, SET first_seen if it is not set yet, SET the rest): no
read, no condition, so concurrent mappers never conflict and no count is lost. The key is a
fixed-length hash, never channel text, so a 1,000-byte field name cannot break the write (the
1,024-byte sort-key limit); paths and codes are stored as data, escaped and at most
`MAX_TEXT_CHARS` each (`storable_text`), so an item stays under ~60 KB whatever the event. A
channel whose events all bring the same new field has one item; its reports read one item per
distinct set. (Items written as one counter per path, `drift#<path>` / `gap#<code>`, are
read alike.)

`entries()` adds the sets up per path or code: `count` is "times seen" (a redelivered or
replayed event counts again), first/last seen the earliest and latest, the example the latest
one's. Events that listed only the first paths or codes add up in one row per channel and
kind that says how many more there were. `orderhub drift report` / `gaps report` print them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orderhub.channels.drift import MAX_LISTED_PER_EVENT, MAX_TEXT_CHARS, MORE_PATHS_NOTE
from orderhub.store import DynamoTable
from orderhub.store.attributes import from_item
from orderhub.stored_text import storable_text

DRIFT = "drift"
GAP = "gap"
_SEPARATOR = "#"
_SET = "set"


_UPDATE = ("ADD #count :one, #more_drift :more_drift, #more_gaps :more_gaps "
           "SET #first = if_not_exists(#first, :at), #last = :at, #example = :event_id, "
           "#drift = :drift, #gaps = :gaps")
_NAMES = {"#count": "count", "#first": "first_seen", "#last": "last_seen", "#example": "last_event_id",
          "#drift": "drift", "#gaps": "gaps", "#more_drift": "more_drift", "#more_gaps": "more_gaps"}


@dataclass(frozen=True)
class HealthEntry:
    """One counter: an unknown field path (drift) or an unmapped code (gap) of one channel."""

    channel: str
    kind: str  # "drift" | "gap"
    key: str  # the field path or the code
    count: int
    first_seen: str
    last_seen: str
    last_event_id: str
    # > 0: the row of what events did not list (paths or codes beyond the first ones; `key` says so)
    more: int = 0

    @property
    def entry(self) -> str:
        return entry_key(self.kind, self.key)


def entry_key(kind: str, key: str) -> str:
    return f"{kind}{_SEPARATOR}{key}"


def overflow_key(kind: str, more: int) -> str:
    """The report row of the paths or codes that events did not list."""
    what = "unknown field paths" if kind == DRIFT else "unmapped codes"
    return f"(+{more} more {what}: an event lists its first {MAX_LISTED_PER_EVENT})"


def _listed(texts: Iterable[str], note: bool) -> tuple[list[str], int]:
    """Distinct storable texts, at most `MAX_LISTED_PER_EVENT`, and how many more there were."""
    texts = tuple(texts)
    if note and len(texts) == MAX_LISTED_PER_EVENT + 1:
        count = texts[-1][1:-len(MORE_PATHS_NOTE)]
        if texts[-1].startswith("+") and texts[-1].endswith(MORE_PATHS_NOTE) and count.isdigit():
            return sorted({storable_text(t, MAX_TEXT_CHARS) for t in texts[:-1]}), int(count)
    distinct = sorted({storable_text(t, MAX_TEXT_CHARS) for t in texts})
    return distinct[:MAX_LISTED_PER_EVENT], max(0, len(distinct) - MAX_LISTED_PER_EVENT)


@dataclass(frozen=True)
class _EventSet:
    """What one event adds: its set's sort key and attributes."""

    entry: str
    drift: list[str]
    gaps: list[str]
    more_drift: int
    more_gaps: int


def _event_set(drift: Iterable[str], gaps: Iterable[str]) -> _EventSet | None:
    listed_drift, more_drift = _listed(drift, note=True)
    listed_gaps, more_gaps = _listed(gaps, note=False)
    if not (listed_drift or listed_gaps):
        return None
    # Whether more were left out is part of the set; how many is summed.
    identity = json.dumps([listed_drift, more_drift > 0, listed_gaps, more_gaps > 0])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return _EventSet(f"{_SET}{_SEPARATOR}{digest}", listed_drift, listed_gaps, more_drift, more_gaps)


class ChannelHealth(DynamoTable):
    """The DynamoDB table. The table name comes from CHANNEL_HEALTH_TABLE when not given."""

    TABLE_ENV = "CHANNEL_HEALTH_TABLE"

    def record(self, channel: str, drift: Iterable[str], gaps: Iterable[str], event_id: str, at: str) -> None:
        added = _event_set(drift, gaps)
        if added is None:
            return
        self.client.update_item(
            TableName=self.table,
            Key={"channel": {"S": storable_text(channel, MAX_TEXT_CHARS)}, "entry": {"S": added.entry}},
            UpdateExpression=_UPDATE,
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues={
                ":one": {"N": "1"}, ":at": {"S": at}, ":event_id": {"S": storable_text(event_id, MAX_TEXT_CHARS)},
                ":drift": {"L": [{"S": p} for p in added.drift]}, ":gaps": {"L": [{"S": c} for c in added.gaps]},
                ":more_drift": {"N": str(added.more_drift)}, ":more_gaps": {"N": str(added.more_gaps)},
            },
        )

    def entries(self, channel: str | None = None, kind: str | None = None) -> list[HealthEntry]:
        """Every counter (of one channel: a Query; of all: a Scan, paginated), optionally of one kind."""
        kwargs: dict[str, Any] = {"TableName": self.table}
        if channel is not None:
            kwargs["KeyConditionExpression"] = "#channel = :channel"
            kwargs["ExpressionAttributeNames"] = {"#channel": "channel"}
            kwargs["ExpressionAttributeValues"] = {":channel": {"S": storable_text(channel, MAX_TEXT_CHARS)}}
        read = self.client.query if channel is not None else self.client.scan
        found: list[dict[str, Any]] = []
        while True:
            reply = read(**kwargs)
            found.extend(from_item(item) for item in reply.get("Items", []))
            if "LastEvaluatedKey" not in reply:
                break
            kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        return _added_up(found, kind)


def _added_up(items: Iterable[dict[str, Any]], kind: str | None) -> list[HealthEntry]:
    """One entry per (channel, kind, path or code) over every item, plus per channel and kind one
    row of what events did not list (its key says how many)."""
    # (channel, kind, path or code; None: not listed) -> [count, first seen, last seen, example, more]
    rows: dict[tuple[str, str, str | None], list[Any]] = {}

    def add(channel: str, row_kind: str, key: str | None, item: dict[str, Any], more: int = 0) -> None:
        first, last = item.get("first_seen", ""), item.get("last_seen", "")
        row = rows.setdefault((channel, row_kind, key), [0, first, last, item.get("last_event_id", ""), 0])
        row[0] += item.get("count", 0)
        row[4] += more
        if first and (not row[1] or first < row[1]):
            row[1] = first
        if last > row[2]:
            row[2], row[3] = last, item.get("last_event_id", "")

    for item in items:
        channel = item["channel"]
        stored_kind, _, key = item["entry"].partition(_SEPARATOR)
        if stored_kind != _SET:  # one counter per path or code
            add(channel, stored_kind, key, item)
            continue
        for path in item.get("drift", []):
            add(channel, DRIFT, path, item)
        for code in item.get("gaps", []):
            add(channel, GAP, code, item)
        if item.get("more_drift"):
            add(channel, DRIFT, None, item, item["more_drift"])
        if item.get("more_gaps"):
            add(channel, GAP, None, item, item["more_gaps"])
    entries = [HealthEntry(channel, row_kind, overflow_key(row_kind, more) if key is None else key, count, first,
                           last, example, more if key is None else 0)
               for (channel, row_kind, key), (count, first, last, example, more) in rows.items()
               if kind is None or row_kind == kind]
    return sorted(entries, key=lambda e: (e.channel, e.entry))


class InMemoryChannelHealth:
    """The same contract in a dict (the items DynamoDB would hold, as plain values): for unit tests."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0

    def record(self, channel: str, drift: Iterable[str], gaps: Iterable[str], event_id: str, at: str) -> None:
        added = _event_set(drift, gaps)
        if added is None:
            return
        self.writes += 1
        channel = storable_text(channel, MAX_TEXT_CHARS)
        item = self.items.setdefault((channel, added.entry), {
            "channel": channel, "entry": added.entry, "count": 0, "first_seen": at, "more_drift": 0,
            "more_gaps": 0})
        item["count"] += 1
        item["more_drift"] += added.more_drift
        item["more_gaps"] += added.more_gaps
        item.update(last_seen=at, last_event_id=storable_text(event_id, MAX_TEXT_CHARS), drift=added.drift,
                    gaps=added.gaps)

    def entries(self, channel: str | None = None, kind: str | None = None) -> list[HealthEntry]:
        wanted = None if channel is None else storable_text(channel, MAX_TEXT_CHARS)
        return _added_up((i for (c, _), i in self.items.items() if wanted is None or c == wanted), kind)
