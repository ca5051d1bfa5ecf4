"""Channel health (ING-7, ST-1): schema drift and mapping gaps, counted per channel.

One item per (channel, unknown field path) and per (channel, unmapped code) in the
`channel-health` table: pk `channel`, sk `entry` = `drift#<path>` or `gap#<code>`, with
`count`, `first_seen`, `last_seen` (hub clock, UTC ISO) and `last_event_id` (an example to look
up in the order's timeline). `orderhub drift report` / `orderhub gaps report` read them.

Each distinct path/code of an event is one UpdateItem (ADD count, SET first_seen if it is
not set yet, SET last_seen and last_event_id): no read, no condition, so concurrent mappers
never conflict. An event is counted each time it is mapped: a redelivered or replayed event
counts again, so `count` is "times seen", not "distinct events". `last_seen` is the time of the
last recording (the intake message's `received_at`); two recordings racing may leave the
slightly older one, which a report does not care about.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orderhub.store import DynamoTable

DRIFT = "drift"
GAP = "gap"
_SEPARATOR = "#"

_UPDATE = ("ADD #count :one "
           "SET #first = if_not_exists(#first, :at), #last = :at, #example = :event_id")
_NAMES = {"#count": "count", "#first": "first_seen", "#last": "last_seen", "#example": "last_event_id"}


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

    @property
    def entry(self) -> str:
        return entry_key(self.kind, self.key)


def entry_key(kind: str, key: str) -> str:
    return f"{kind}{_SEPARATOR}{key}"


def _entries(drift: Iterable[str], gaps: Iterable[str]) -> list[str]:
    return sorted({entry_key(DRIFT, p) for p in drift} | {entry_key(GAP, c) for c in gaps})


def _split(entry: str) -> tuple[str, str]:
    kind, _, key = entry.partition(_SEPARATOR)
    return kind, key


class ChannelHealth(DynamoTable):
    """The DynamoDB table. The table name comes from CHANNEL_HEALTH_TABLE when not given."""

    TABLE_ENV = "CHANNEL_HEALTH_TABLE"

    def record(self, channel: str, drift: Iterable[str], gaps: Iterable[str], event_id: str, at: str) -> None:
        for entry in _entries(drift, gaps):
            self.client.update_item(
                TableName=self.table,
                Key={"channel": {"S": channel}, "entry": {"S": entry}},
                UpdateExpression=_UPDATE,
                ExpressionAttributeNames=_NAMES,
                ExpressionAttributeValues={":one": {"N": "1"}, ":at": {"S": at}, ":event_id": {"S": event_id}},
            )

    def entries(self, channel: str | None = None, kind: str | None = None) -> list[HealthEntry]:
        """Every counter (of one channel: a Query; of all: a Scan, paginated), optionally of one kind."""
        kwargs: dict[str, Any] = {"TableName": self.table}
        if channel is not None:
            kwargs["KeyConditionExpression"] = "#channel = :channel"
            kwargs["ExpressionAttributeNames"] = {"#channel": "channel"}
            kwargs["ExpressionAttributeValues"] = {":channel": {"S": channel}}
            if kind is not None:
                kwargs["KeyConditionExpression"] += " AND begins_with(#entry, :kind)"
                kwargs["ExpressionAttributeNames"]["#entry"] = "entry"
                kwargs["ExpressionAttributeValues"][":kind"] = {"S": kind + _SEPARATOR}
        read = self.client.query if channel is not None else self.client.scan
        found: list[HealthEntry] = []
        while True:
            reply = read(**kwargs)
            found.extend(_from_item(item) for item in reply.get("Items", []))
            if "LastEvaluatedKey" not in reply:
                break
            kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        return sorted((e for e in found if kind is None or e.kind == kind), key=lambda e: (e.channel, e.entry))


def _from_item(item: dict[str, Any]) -> HealthEntry:
    kind, key = _split(item["entry"]["S"])
    return HealthEntry(
        channel=item["channel"]["S"],
        kind=kind,
        key=key,
        count=int(item.get("count", {}).get("N", "0")),
        first_seen=item.get("first_seen", {}).get("S", ""),
        last_seen=item.get("last_seen", {}).get("S", ""),
        last_event_id=item.get("last_event_id", {}).get("S", ""),
    )


class InMemoryChannelHealth:
    """The same contract in a dict: for unit tests."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], HealthEntry] = {}

    def record(self, channel: str, drift: Iterable[str], gaps: Iterable[str], event_id: str, at: str) -> None:
        for entry in _entries(drift, gaps):
            known = self.items.get((channel, entry))
            kind, key = _split(entry)
            self.items[(channel, entry)] = HealthEntry(
                channel=channel, kind=kind, key=key, count=(known.count if known else 0) + 1,
                first_seen=known.first_seen if known else at, last_seen=at, last_event_id=event_id)

    def entries(self, channel: str | None = None, kind: str | None = None) -> list[HealthEntry]:
        return sorted((e for e in self.items.values()
                       if (channel is None or e.channel == channel) and (kind is None or e.kind == kind)),
                      key=lambda e: (e.channel, e.entry))
