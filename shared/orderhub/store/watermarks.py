"""The poll-state table: per pulled shop, the watermark of the last window fully fetched and enqueued (ING-5).

One item per shop, keyed `shop_key` = "<channel>#<shop_id>":

- `watermark`: UTC ISO (`clock.utc_iso`: fixed width, so string order is time order). Every order
  the platform reports modified at or before it has been enqueued at least once.
- `updated_at`: when the watermark last moved.
- `pulled_at`: when the run that moved it there started (planned its windows). The next run re-reads
  from `min(watermark, pulled_at - settle - overlap)` rather than always `watermark - overlap`: a late
  write is visible by `modified + settle + overlap`, so a run catching up far behind the clock need
  not re-read windows that had long settled when they were read (see `pull/poller.py`).
- `window_s`: the window size the poller learnt for the shop (windows are sized so that one page
  holds a window; absent: the configured / platform limit).
- `reread_from`: set when a run cut its re-read of the overlap short to leave time for new windows:
  the next runs re-read from there (absent: nothing pending).
- `last_error`, `last_error_at`: the last failed run's reason (platform error codes, no personal data).
- `channel`, `shop_id`: for people reading the table.

Every write is a single conditional UpdateItem/PutItem, so two pollers of the same shop (a scheduled run
overlapping a manual `orderhub poll`) can neither move the watermark back nor past a gap:

- `start` creates the item only if it does not exist (the first run's starting point is persisted
  before anything is fetched, so a failing first run retries from the same point instead of a
  lookback that slides forward with the clock);
- `advance(from, to)` moves it to `to` only if the stored value lies in [`from`, `to`): `from` is the
  start of the stretch this run fetched without a gap, so the new value never skips past orders
  nobody fetched (e.g. after an operator rewound it meanwhile), and never goes back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from orderhub.clock import utc_iso
from orderhub.store import DynamoTable, is_condition_failure

MAX_ERROR_CHARS = 300


def shop_key(channel: str, shop_id: str) -> str:
    return f"{channel}#{shop_id}"


@dataclass(frozen=True)
class PollState:
    shop_key: str
    watermark: datetime
    updated_at: str = ""
    pulled_at: datetime | None = None
    window_s: int | None = None
    reread_from: datetime | None = None
    last_error: str = ""
    last_error_at: str = ""


class WatermarkStore(Protocol):
    def get(self, key: str) -> PollState | None: ...

    def start(self, key: str, watermark: datetime, now: datetime) -> PollState:
        """Create the shop's state at `watermark` unless it exists; the stored state either way."""
        ...

    def advance(self, key: str, covered_from: datetime, to: datetime, now: datetime, pulled_at: datetime) -> bool:
        """Move the watermark to `to` if the stored one is in [covered_from, to). False: it was not."""
        ...

    def record_failure(self, key: str, error: str, now: datetime) -> None: ...

    def set_hints(self, key: str, window_s: int | None, reread_from: datetime | None) -> None:
        """The learnt window size and the pending re-read start (None: remove)."""
        ...


def _state(item: dict[str, Any]) -> PollState | None:
    if "watermark" not in item:
        return None
    return PollState(
        shop_key=item["shop_key"]["S"],
        watermark=datetime.fromisoformat(item["watermark"]["S"]),
        updated_at=item.get("updated_at", {}).get("S", ""),
        pulled_at=datetime.fromisoformat(item["pulled_at"]["S"]) if "pulled_at" in item else None,
        window_s=int(item["window_s"]["N"]) if "window_s" in item else None,
        reread_from=datetime.fromisoformat(item["reread_from"]["S"]) if "reread_from" in item else None,
        last_error=item.get("last_error", {}).get("S", ""),
        last_error_at=item.get("last_error_at", {}).get("S", ""),
    )



class DynamoWatermarkStore(DynamoTable):
    TABLE_ENV = "POLL_STATE_TABLE"

    def get(self, key: str) -> PollState | None:
        item = self.client.get_item(TableName=self.table, Key={"shop_key": {"S": key}},
                                    ConsistentRead=True).get("Item")
        return _state(item) if item else None

    def start(self, key: str, watermark: datetime, now: datetime) -> PollState:
        channel, _, shop = key.partition("#")
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"shop_key": {"S": key}, "channel": {"S": channel}, "shop_id": {"S": shop},
                      "watermark": {"S": utc_iso(watermark)}, "updated_at": {"S": utc_iso(now)}},
                ConditionExpression="attribute_not_exists(shop_key)",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
        state = self.get(key)
        if state is None:  # every write of ours sets a watermark: someone else wrote this item
            raise RuntimeError(f"poll state {key} exists without a watermark")
        return state

    def advance(self, key: str, covered_from: datetime, to: datetime, now: datetime, pulled_at: datetime) -> bool:
        try:
            self.client.update_item(
                TableName=self.table, Key={"shop_key": {"S": key}},
                UpdateExpression="SET watermark = :to, updated_at = :now, pulled_at = :pulled "
                                 "REMOVE last_error, last_error_at",
                ConditionExpression="watermark >= :from AND watermark < :to",
                ExpressionAttributeValues={":from": {"S": utc_iso(covered_from)}, ":to": {"S": utc_iso(to)},
                                           ":now": {"S": utc_iso(now)}, ":pulled": {"S": utc_iso(pulled_at)}},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def record_failure(self, key: str, error: str, now: datetime) -> None:
        try:
            self.client.update_item(
                TableName=self.table, Key={"shop_key": {"S": key}},
                UpdateExpression="SET last_error = :e, last_error_at = :now",
                ConditionExpression="attribute_exists(watermark)",
                ExpressionAttributeValues={":e": {"S": error[:MAX_ERROR_CHARS]}, ":now": {"S": utc_iso(now)}})
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def set_hints(self, key: str, window_s: int | None, reread_from: datetime | None) -> None:
        sets, removes, values = [], [], {}
        if window_s is None:
            removes.append("window_s")
        else:
            sets.append("window_s = :w")
            values[":w"] = {"N": str(window_s)}
        if reread_from is None:
            removes.append("reread_from")
        else:
            sets.append("reread_from = :r")
            values[":r"] = {"S": utc_iso(reread_from)}
        expression = " ".join(part for part in (
            "SET " + ", ".join(sets) if sets else "", "REMOVE " + ", ".join(removes) if removes else "") if part)
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        try:
            self.client.update_item(TableName=self.table, Key={"shop_key": {"S": key}}, UpdateExpression=expression,
                                    ConditionExpression="attribute_exists(watermark)", **kwargs)
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def scan(self) -> list[PollState]:
        """Every shop's state (operations: `orderhub poll` prints the lags). Not used by the function."""
        out: list[PollState] = []
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.client.scan(**kwargs)
            out.extend(state for state in map(_state, page.get("Items", [])) if state is not None)
            if "LastEvaluatedKey" not in page:
                return sorted(out, key=lambda s: s.shop_key)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class MemoryWatermarkStore:
    """The same conditions in memory: for tests and the benchmark."""

    def __init__(self) -> None:
        self.states: dict[str, PollState] = {}
        self.history: dict[str, list[datetime]] = {}  # every value each watermark took, in order
        self._lock = threading.Lock()

    def get(self, key: str) -> PollState | None:
        return self.states.get(key)

    def start(self, key: str, watermark: datetime, now: datetime) -> PollState:
        with self._lock:
            if key not in self.states:
                self.states[key] = PollState(key, watermark, utc_iso(now))
                self.history.setdefault(key, []).append(watermark)
            return self.states[key]

    def advance(self, key: str, covered_from: datetime, to: datetime, now: datetime, pulled_at: datetime) -> bool:
        with self._lock:
            state = self.states.get(key)
            if state is None or not covered_from <= state.watermark < to:
                return False
            self.states[key] = replace(state, watermark=to, updated_at=utc_iso(now), pulled_at=pulled_at,
                                       last_error="", last_error_at="")
            self.history[key].append(to)
            return True

    def record_failure(self, key: str, error: str, now: datetime) -> None:
        with self._lock:
            if key in self.states:
                self.states[key] = replace(self.states[key], last_error=error[:MAX_ERROR_CHARS],
                                           last_error_at=utc_iso(now))

    def set_hints(self, key: str, window_s: int | None, reread_from: datetime | None) -> None:
        with self._lock:
            if key in self.states:
                self.states[key] = replace(self.states[key], window_s=window_s, reread_from=reread_from)
