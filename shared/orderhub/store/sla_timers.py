"""The sla-timers table: SLA timers by the 5-minute slot they fall due in, and the watchdog's watermark.

- A timer: pk `slot` = the slot's start (UTC ISO), sk `timer_key` = `<order>#<rule>#<due_at>`, with
  `order_id`, `rule`, `due_at` and `expires_at` (TTL, epoch seconds: a week after it fell due).
  Writing the same timer again rewrites the same item: arming is idempotent.
- The watermark: pk `slot` = "watermark", sk `timer_key` = "sla-watch", attribute `watermark` =
  the first slot the next scheduled run reads. The first timers ever armed create it (at their
  slot), so the first run starts where timers are; after that only runs move it, and only forward
  (a conditional write): two overlapping runs cannot move it back, and a slot is never skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from orderhub.clock import utc_iso
from orderhub.exceptions.model import Rule, Timer
from orderhub.store import DynamoTable, is_condition_failure

WATERMARK_SLOT = "watermark"
WATERMARK_KEY = "sla-watch"
KEEP_FIRED = timedelta(days=7)  # a timer's item lives this long after its slot / due time (TTL)
BATCH_WRITE_MAX = 25


class TimerStore(Protocol):
    def watermark(self) -> datetime | None: ...
    def start(self, at_slot: datetime, at: datetime) -> datetime: ...
    def advance(self, to: datetime, at: datetime) -> bool: ...
    def put(self, placed: Iterable[tuple[datetime, Timer]]) -> int: ...
    def due_in(self, slot: datetime) -> list[Timer]: ...


def _expires_at(slot: datetime, timer: Timer) -> int:
    return int((max(slot, timer.due) + KEEP_FIRED).timestamp())



class TimersNotWritten(RuntimeError):
    pass


class DynamoTimerStore(DynamoTable):
    TABLE_ENV = "SLA_TIMERS_TABLE"

    def __init__(self, client: Any = None, table: str | None = None, retries: int = 5,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        super().__init__(client, table)
        self._retries = retries
        self._sleep = sleep

    def watermark(self) -> datetime | None:
        item = self.client.get_item(TableName=self.table, ConsistentRead=True, Key={
            "slot": {"S": WATERMARK_SLOT}, "timer_key": {"S": WATERMARK_KEY}}).get("Item")
        return datetime.fromisoformat(item["watermark"]["S"]) if item and "watermark" in item else None

    def start(self, at_slot: datetime, at: datetime) -> datetime:
        """Create the watermark at `at_slot` unless it exists; the stored watermark either way."""
        try:
            self.client.put_item(TableName=self.table, ConditionExpression="attribute_not_exists(slot)", Item={
                "slot": {"S": WATERMARK_SLOT}, "timer_key": {"S": WATERMARK_KEY},
                "watermark": {"S": utc_iso(at_slot)}, "updated_at": {"S": utc_iso(at)}})
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
        stored = self.watermark()
        if stored is None:  # every write of ours sets it: someone else wrote this item
            raise RuntimeError("the watchdog's watermark item exists without a watermark")
        return stored

    def advance(self, to: datetime, at: datetime) -> bool:
        """Move the watermark to `to` unless it is already there or further; False: it was."""
        try:
            self.client.update_item(
                TableName=self.table, Key={"slot": {"S": WATERMARK_SLOT}, "timer_key": {"S": WATERMARK_KEY}},
                UpdateExpression="SET watermark = :to, updated_at = :at",
                ConditionExpression="attribute_not_exists(watermark) OR watermark < :to",
                ExpressionAttributeValues={":to": {"S": utc_iso(to)}, ":at": {"S": utc_iso(at)}})
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def put(self, placed: Iterable[tuple[datetime, Timer]]) -> int:
        """Write the timers (BatchWriteItem, unprocessed items retried); how many items were written."""
        items = {}
        for slot, timer in placed:
            key = (utc_iso(slot), timer.key)
            items[key] = {"PutRequest": {"Item": {
                "slot": {"S": key[0]}, "timer_key": {"S": timer.key}, "order_id": {"S": timer.order_id},
                "rule": {"S": timer.rule.value}, "due_at": {"S": timer.due_at},
                "expires_at": {"N": str(_expires_at(slot, timer))}}}}
        requests = list(items.values())
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending = requests[start:start + BATCH_WRITE_MAX]
            for attempt in range(self._retries):
                if attempt:
                    self._sleep(0.05 * 2 ** attempt)  # unprocessed items mean throttling: back off
                reply = self.client.batch_write_item(RequestItems={self.table: pending})
                pending = reply.get("UnprocessedItems", {}).get(self.table, [])
                if not pending:
                    break
            else:
                raise TimersNotWritten(f"{len(pending)} timers not written after {self._retries} attempts")
        return len(requests)

    def due_in(self, slot: datetime) -> list[Timer]:
        request: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "slot = :s", "ConsistentRead": True,
            "ExpressionAttributeValues": {":s": {"S": utc_iso(slot)}}}
        timers: list[Timer] = []
        while True:
            reply = self.client.query(**request)
            timers += [Timer(i["order_id"]["S"], Rule(i["rule"]["S"]), i["due_at"]["S"])
                       for i in reply.get("Items", [])]
            if "LastEvaluatedKey" not in reply:
                return timers
            request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]


class MemoryTimerStore:
    """The same contract in memory: for unit tests."""

    def __init__(self) -> None:
        self.slots: dict[datetime, dict[str, Timer]] = {}
        self.mark: datetime | None = None
        self.marks: list[datetime] = []  # every value the watermark took
        self.writes = 0

    def watermark(self) -> datetime | None:
        return self.mark

    def start(self, at_slot: datetime, at: datetime) -> datetime:
        if self.mark is None:
            self.mark = at_slot
            self.marks.append(at_slot)
        return self.mark

    def advance(self, to: datetime, at: datetime) -> bool:
        if self.mark is not None and self.mark >= to:
            return False
        self.mark = to
        self.marks.append(to)
        return True

    def put(self, placed: Iterable[tuple[datetime, Timer]]) -> int:
        written = 0
        for slot, timer in placed:
            self.slots.setdefault(slot, {})[timer.key] = timer
            written += 1
        self.writes += written
        return written

    def due_in(self, slot: datetime) -> list[Timer]:
        return sorted(self.slots.get(slot, {}).values())

    def all_timers(self) -> set[Timer]:
        return {t for timers in self.slots.values() for t in timers.values()}
