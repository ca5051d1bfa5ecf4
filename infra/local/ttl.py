"""DynamoDB TTL, locally: moto stores the TTL setting but never deletes anything (local_perf.md §1).

The sweeper deletes items whose TTL attribute (a Number, epoch seconds) is before the
runtime clock's "now", with DynamoDB's rules: non-numbers are ignored, and so are values
more than five years in the past (DynamoDB treats those as not-a-TTL). Each delete is
conditional on the item still being expired, so a write that extends the TTL wins.

In AWS a TTL delete reaches the stream as REMOVE with userIdentity
{type: Service, principalId: dynamodb.amazonaws.com}. moto cannot stamp that, so the
sweeper remembers what it deleted and the stream poller adds the identity to those
REMOVE records before handing them to a function.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import Any

from infra.local.clock import Clock
from infra.topology import Table

log = logging.getLogger("orderhub.local.ttl")

FIVE_YEARS_S = 5 * 365 * 86400


class TtlDeletions:
    """Keys the sweeper deleted and the stream has not delivered yet (thread-safe)."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _key(table: str, keys: dict) -> tuple[str, str]:
        return table, json.dumps(keys, sort_keys=True, default=str)

    def add(self, table: str, keys: dict) -> None:
        with self._lock:
            self._keys.add(self._key(table, keys))

    def discard(self, table: str, keys: dict) -> None:
        with self._lock:
            self._keys.discard(self._key(table, keys))

    def pop(self, table: str, keys: dict) -> bool:
        with self._lock:
            key = self._key(table, keys)
            found = key in self._keys
            self._keys.discard(key)
            return found


class TtlSweeper:
    def __init__(self, tables: list[tuple[Table, str]], ddb: Any, clock: Clock, deletions: TtlDeletions,
                 interval_s: float = 30.0) -> None:
        self._tables = [(t, name) for t, name in tables if t.ttl_attribute]
        self._ddb, self._clock, self._deletions = ddb, clock, deletions
        self._interval = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.deleted = 0

    def start(self) -> None:
        if not self._tables:
            return
        self._clock.subscribe(self._on_jump)
        self._thread = threading.Thread(target=self._loop, name="orderhub-ttl", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._clock.unsubscribe(self._on_jump)
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _on_jump(self, now: datetime) -> None:
        self.sweep(now)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep(self._clock.now())
            except Exception:  # keep sweeping after a transient failure
                log.exception("TTL sweep failed")
            self._clock.wait(self._interval, self._stop)

    def sweep(self, now: datetime) -> int:
        """Delete every expired item; returns how many were deleted."""
        deleted = 0
        with self._lock:
            for table, name in self._tables:
                deleted += self._sweep_table(table, name, int(now.timestamp()))
        self.deleted += deleted
        return deleted

    def _sweep_table(self, table: Table, name: str, now_s: int) -> int:
        key_names = [table.partition_key] + ([table.sort_key] if table.sort_key else [])
        names = {"#ttl": table.ttl_attribute, **{f"#k{i}": k for i, k in enumerate(key_names)}}
        values = {":now": {"N": str(now_s)}, ":oldest": {"N": str(now_s - FIVE_YEARS_S)}}
        condition = "#ttl BETWEEN :oldest AND :now"
        deleted = 0
        paginator = self._ddb.get_paginator("scan")
        for page in paginator.paginate(TableName=name, FilterExpression=condition, ExpressionAttributeNames=names,
                                       ExpressionAttributeValues=values,
                                       ProjectionExpression=", ".join(f"#k{i}" for i in range(len(key_names)))):
            for keys in page.get("Items", []):
                # Remember first: the stream poller may read the REMOVE before delete_item returns.
                self._deletions.add(table.name, keys)
                try:
                    self._ddb.delete_item(TableName=name, Key=keys, ConditionExpression=condition,
                                          ExpressionAttributeNames={"#ttl": table.ttl_attribute},
                                          ExpressionAttributeValues=values)
                    deleted += 1
                except self._ddb.exceptions.ConditionalCheckFailedException:
                    self._deletions.discard(table.name, keys)  # rewritten meanwhile with a later TTL
        if deleted:
            log.info("TTL: deleted %d expired item(s) from %s", deleted, name)
        return deleted
