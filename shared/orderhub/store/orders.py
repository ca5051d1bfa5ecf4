"""The orders table (one item per order; its stream is the outbox) and the order event log.

Every write is a single-item conditional write: the order is replaced only if its version is
still the one that was read (optimistic concurrency), and a log entry is added only if no
entry has its key (deduplication). No transactions on the hot path: a transaction would
double the write units, and the merge design does not need one (see docs/decisions.md).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from pydantic_core import from_json, to_json

from orderhub.models.order import Order
from orderhub.payments.ledger import InMemoryLedger
from orderhub.settings import env
from orderhub.store import DynamoBacked
from orderhub.store.attributes import compress, from_item
from orderhub.store.order_item import order_from_item, order_to_item


class EventLogEntry(BaseModel):
    """One accepted channel event in an order's system timeline. Append-only."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    event_key: str  # <event time UTC>#<channel event id>: sorts the log by the channel's clock
    channel: str
    channel_event_id: str
    channel_code: str
    kind: str | None = None
    event_time: str
    received_at: str
    outcome: str  # applied | no_change | unmapped | status_held
    status_before: str | None = None
    status_after: str | None = None
    note: str = ""
    raw_body: bytes = b""  # the request body as received (zlib-compressed at rest when large)
    raw_headers: dict[str, str] = {}
    expires_at: int | None = None  # epoch seconds; DynamoDB TTL
    # A digest of the event's facts: a later event under the same key with other facts is a conflict,
    # told from a redelivery without reading the entry ("" for entries written before it was kept).
    facts: str = ""

    @staticmethod
    def key_for(event_time: str, channel_event_id: str) -> str:
        return f"{event_time}#{channel_event_id}"




class LogWrite(StrEnum):
    """What appending an event-log entry did."""

    NEW = "new"
    DUPLICATE = "duplicate"  # the key was there with the same facts (or with no digest kept)
    CONFLICT = "conflict"  # the key was there with other facts: the channel re-used an event id


def _log_write(kept_facts: str, arrived_facts: str) -> LogWrite:
    return LogWrite.CONFLICT if kept_facts and arrived_facts and kept_facts != arrived_facts else LogWrite.DUPLICATE


class ConflictError(RuntimeError):
    """The order changed between read and write; re-read and merge again."""


class OrderStore(Protocol):
    def get_order(self, order_id: str) -> Order | None: ...
    def put_order(self, order: Order, expected_version: int) -> None: ...
    def append_event(self, entry: EventLogEntry) -> LogWrite: ...
    def list_events(self, order_id: str) -> list[EventLogEntry]: ...
    def link_waybill(self, tracking_no: str, order_id: str, expires_at: int) -> None: ...
    def order_of_waybill(self, tracking_no: str) -> str | None: ...


# Waybill -> order links live in the event-log table under their own partition key.
WAYBILL_PREFIX = "waybill#"


# Bodies above this are stored zlib-compressed (JSON shrinks 3-5x once it has some size; a small
# body saves a few dozen bytes for the CPU it costs).
COMPRESS_ABOVE_BYTES = 512


def entry_to_item(entry: EventLogEntry) -> dict[str, Any]:
    """The log item: keys, the attributes replay filters on (`channel`, `received_at`, `outcome`), the
    TTL, the raw body (`raw`, or `raw_z` compressed), and the rest in `e`, one JSON list.

    Few attributes because the SDK (de)serialises an item value by value; the event time and the
    channel's event id are left out of `e` (null) when the key already spells them.
    """
    v = entry.__dict__
    key_time, _, log_id = v["event_key"].partition("#")
    described = [None if v["channel_event_id"] == log_id else v["channel_event_id"], v["channel_code"], v["kind"],
                 None if v["event_time"] == key_time else v["event_time"], v["status_before"], v["status_after"],
                 v["note"], v["raw_headers"]]
    item: dict[str, Any] = {"order_id": {"S": v["order_id"]}, "event_key": {"S": v["event_key"]},
                            "channel": {"S": v["channel"]}, "received_at": {"S": v["received_at"]},
                            "outcome": {"S": v["outcome"]}, "e": {"S": to_json(described).decode()}}
    if v["expires_at"] is not None:
        item["expires_at"] = {"N": str(v["expires_at"])}
    if v["facts"]:
        item["f"] = {"S": v["facts"]}
    raw = v["raw_body"]
    if len(raw) > COMPRESS_ABOVE_BYTES:
        item["raw_z"] = {"B": compress(raw)}
    else:
        item["raw"] = {"B": raw}
    return item


def entry_from_item(item: dict[str, Any]) -> EventLogEntry:
    if "e" not in item:  # written before `e`: one attribute per field
        values = from_item(item)
    else:
        event_id, code, kind, event_time, before, after, note, headers = from_json(item["e"]["S"])
        event_key = item["event_key"]["S"]
        key_time, _, log_id = event_key.partition("#")
        values = {"order_id": item["order_id"]["S"], "event_key": event_key, "channel": item["channel"]["S"],
                  "received_at": item["received_at"]["S"], "outcome": item["outcome"]["S"],
                  "channel_event_id": log_id if event_id is None else event_id, "channel_code": code, "kind": kind,
                  "event_time": key_time if event_time is None else event_time, "status_before": before,
                  "status_after": after, "note": note, "raw_headers": headers}
        if "expires_at" in item:
            values["expires_at"] = int(item["expires_at"]["N"])
        if "f" in item:
            values["facts"] = item["f"]["S"]
    compressed = item.get("raw_z")
    values.pop("raw_z", None)
    values["raw_body"] = zlib.decompress(compressed["B"]) if compressed is not None else _raw(item)
    values.pop("raw", None)
    return EventLogEntry.model_validate(values)


def _raw(item: dict[str, Any]) -> bytes:
    raw = item.get("raw")
    return bytes(raw["B"]) if raw is not None else b""


_WRITTEN_KEPT = 32  # a batch is 10 messages; a Douyin push can carry several events


def _is_condition_failure(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoOrderStore(DynamoBacked):
    def __init__(self, client: Any = None, orders_table: str | None = None, events_table: str | None = None):
        super().__init__(client)
        self._orders = orders_table
        self._events = events_table
        self._pinned_orders: str | None = None
        self._pinned_events: str | None = None
        # The items this store last wrote, with the orders they encode: when GetItem returns exactly
        # that item (the next event of the order in the same batch), its order is already decoded.
        # Any other item, newer or not, is decoded as read.
        self._written: OrderedDict[str, tuple[dict[str, Any], Order]] = OrderedDict()

    @property
    def orders_table(self) -> str:
        return self._orders or self._pinned_orders or env("ORDERS_TABLE")

    @property
    def events_table(self) -> str:
        return self._events or self._pinned_events or env("ORDER_EVENTS_TABLE")

    def start_batch(self) -> None:
        """Read the table names from the environment once, for the batch in progress (an event uses
        them three or four times, and an os.environ read costs ~1.5 us)."""
        self._pinned_orders = None if self._orders else env("ORDERS_TABLE")
        self._pinned_events = None if self._events else env("ORDER_EVENTS_TABLE")

    def end_batch(self) -> None:
        """Unpin the table names and forget the orders written: nothing is kept between invocations."""
        self._pinned_orders = self._pinned_events = None
        self._written.clear()

    def get_order(self, order_id: str) -> Order | None:
        reply = self.client.get_item(TableName=self.orders_table, Key={"order_id": {"S": order_id}},
                                     ConsistentRead=True)
        item = reply.get("Item")
        if not item:
            return None
        written = self._written.get(order_id)
        if written is not None and written[0] == item:
            return written[1]
        return order_from_item(item)

    def put_order(self, order: Order, expected_version: int) -> None:
        """Write `order` if the stored version is still `expected_version` (0: not stored yet)."""
        if expected_version == 0:
            condition, values = "attribute_not_exists(order_id)", None
        else:
            condition, values = "version = :expected", {":expected": {"N": str(expected_version)}}
        item = order_to_item(order)
        kwargs: dict[str, Any] = {"TableName": self.orders_table, "Item": item, "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**kwargs)
        except Exception as exc:
            if _is_condition_failure(exc):
                raise ConflictError(order.order_id) from exc
            raise
        self._written[order.order_id] = (item, order)
        self._written.move_to_end(order.order_id)
        if len(self._written) > _WRITTEN_KEPT:
            self._written.popitem(last=False)

    def append_event(self, entry: EventLogEntry) -> LogWrite:
        """Add the entry unless one with its key exists; if one does, whether its facts are the same.

        The failed condition returns the entry that is there (ALL_OLD): no second read, and no read at
        all for a new entry."""
        try:
            self.client.put_item(TableName=self.events_table, Item=entry_to_item(entry),
                                 ConditionExpression="attribute_not_exists(event_key)",
                                 ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Exception as exc:
            if _is_condition_failure(exc):
                kept = (getattr(exc, "response", None) or {}).get("Item") or {}
                return _log_write(kept.get("f", {}).get("S", ""), entry.facts)
            raise
        return LogWrite.NEW

    def link_waybill(self, tracking_no: str, order_id: str, expires_at: int) -> None:
        """Remember which order a waybill belongs to (first writer wins; a reused number keeps its order)."""
        try:
            self.client.put_item(
                TableName=self.events_table,
                Item={"order_id": {"S": WAYBILL_PREFIX + tracking_no}, "event_key": {"S": "order"},
                      "linked_order": {"S": order_id}, "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(event_key)")
        except Exception as exc:
            if not _is_condition_failure(exc):
                raise

    def order_of_waybill(self, tracking_no: str) -> str | None:
        reply = self.client.get_item(TableName=self.events_table, ConsistentRead=True,
                                     Key={"order_id": {"S": WAYBILL_PREFIX + tracking_no}, "event_key": {"S": "order"}})
        item = reply.get("Item")
        return item["linked_order"]["S"] if item else None

    def list_events(self, order_id: str) -> list[EventLogEntry]:
        entries: list[EventLogEntry] = []
        kwargs: dict[str, Any] = {"TableName": self.events_table,
                                  "KeyConditionExpression": "order_id = :id",
                                  "ExpressionAttributeValues": {":id": {"S": order_id}}}
        while True:
            reply = self.client.query(**kwargs)
            entries.extend(entry_from_item(item) for item in reply.get("Items", []))
            if "LastEvaluatedKey" not in reply:
                return entries
            kwargs["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


class InMemoryOrderStore(InMemoryLedger):
    """The same contract in a dict: for unit tests and CPU benchmarks. It is its own ledger too (the mapper
    books money in the store's ledger when it is given none)."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, Order] = {}
        self.events: dict[tuple[str, str], EventLogEntry] = {}
        self.waybills: dict[str, str] = {}

    def link_waybill(self, tracking_no: str, order_id: str, expires_at: int) -> None:
        self.waybills.setdefault(tracking_no, order_id)

    def order_of_waybill(self, tracking_no: str) -> str | None:
        return self.waybills.get(tracking_no)

    def get_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def put_order(self, order: Order, expected_version: int) -> None:
        current = self.orders.get(order.order_id)
        if (current.version if current else 0) != expected_version:
            raise ConflictError(order.order_id)
        self.orders[order.order_id] = order

    def append_event(self, entry: EventLogEntry) -> LogWrite:
        key = (entry.order_id, entry.event_key)
        kept = self.events.get(key)
        if kept is not None:
            return _log_write(kept.facts, entry.facts)
        self.events[key] = entry
        return LogWrite.NEW

    def list_events(self, order_id: str) -> list[EventLogEntry]:
        return sorted((e for (oid, _), e in self.events.items() if oid == order_id), key=lambda e: e.event_key)


def epoch_seconds(at: datetime) -> int:
    return int(at.timestamp())
