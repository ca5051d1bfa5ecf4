"""The alerts table: one throttling window per (problem, destination), and which destinations a queued
alert already reached.

Window items, `alert_key` = "<problem key>#<destination>":
- `window_start`, `window_until` (epoch seconds): the window the last claim opened; `claim`, `claim_until`:
  the id of the invocation sending that window's alert and its lease (present while it sends, and after
  a crash mid-send, when the lease runs out).
- `pending` (count), `pending_first`, `pending_last` (UTC ISO): occurrences not told yet.
- `title`, `text`, `route`, `severity`: the latest occurrence's words (the digest tells them).
- `last_told_at`, `alerts`, `told`: the last alert sent, and how many alerts / occurrences so far.
- `problem`, `destination`: for people reading the table; `expires_at`: TTL, a week after last use.

Every write is one conditional UpdateItem, so concurrent notifiers need no lock:
- `count` adds to `pending` only while a window is open (`window_until > now`);
- `claim` opens a window only if none is open and no other claim holds a lease (exactly one invocation
  wins; it reads the pending count it will tell from ALL_OLD). The lease outlives the notifier's Lambda
  timeout, so no claim is taken over while its holder may still send. Pending is left in place until
  `confirm` subtracts what was told, so a crash between claim and confirm loses nothing (the next alert
  tells it: at worst twice, never not at all);
- `release` undoes a claim whose send failed (only while it is still the claim holder's).

Record items, `alert_key` = "delivered#<alert id>": `done`, the destinations a queued alert already
counted or told before one of its destinations failed; a retry or redrive of it skips them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from orderhub.store import DynamoTable, is_condition_failure

WINDOW_ITEM_TTL_S = 7 * 86_400
RECORD_ITEM_TTL_S = 15 * 86_400  # longer than a DLQ keeps a message (14 days): a redrive still finds it
BATCH_GET_MAX = 100
# A claim's lease: longer than the notifier may run (its Lambda timeout, 30 s), so a slow send is never
# told again by another claimer while it may still succeed.
CLAIM_LEASE_S = 120
RECORD_PREFIX = "delivered#"


def window_key(problem: str, destination: str) -> str:
    return f"{problem}#{destination}"


def record_key(alert_id: str) -> str:
    return f"{RECORD_PREFIX}{alert_id}"


@dataclass(frozen=True)
class Occurrence:
    """What one queued alert adds to a window: its count, times and words."""

    count: int
    first_at: str
    last_at: str
    title: str
    text: str
    route: str
    severity: str


@dataclass(frozen=True)
class Prior:
    """The window item as a claim found it: what the claimer tells, and what a release restores."""

    claim_id: str
    pending: int = 0
    pending_first: str = ""
    pending_last: str = ""
    last_told_at: str = ""
    window_start: float | None = None
    window_until: float | None = None
    title: str = ""
    text: str = ""
    route: str = ""
    severity: str = ""


@dataclass(frozen=True, order=True)
class Due:
    """A window that closed with occurrences not told (the digest tells them)."""

    problem: str
    destination: str


class AlertStore(Protocol):
    def count(self, problem: str, destination: str, occurrence: Occurrence, now: float) -> bool:
        """Add to the open window's pending count. False: no window is open (nothing written)."""
        ...

    def claim(self, problem: str, destination: str, occurrence: Occurrence | None, now: float, window_s: int,
              claim_id: str) -> Prior | None:
        """Open a window unless one is open; None when one is. A digest claim (`occurrence` None) also
        needs occurrences pending."""
        ...

    def confirm(self, problem: str, destination: str, prior: Prior, told: int, now_iso: str) -> None:
        """The claim's alert was sent: subtract what it told of the pending count."""
        ...

    def release(self, problem: str, destination: str, prior: Prior) -> None:
        """The claim's alert was not sent: restore the window as the claim found it."""
        ...

    def due(self, now: float) -> list[Due]: ...

    def recall(self, alert_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """For each alert id that has a record item: the destinations it already reached."""
        ...

    def remember(self, alert_id: str, destinations: Iterable[str], now: float) -> None: ...



def _n(value: float) -> dict[str, str]:
    return {"N": f"{value:.3f}"}


def _prior(claim_id: str, item: dict[str, Any]) -> Prior:
    def s(name: str) -> str:
        return item.get(name, {}).get("S", "")

    def f(name: str) -> float | None:
        return float(item[name]["N"]) if name in item else None

    return Prior(claim_id=claim_id, pending=int(float(item.get("pending", {}).get("N", "0"))),
                 pending_first=s("pending_first"), pending_last=s("pending_last"), last_told_at=s("last_told_at"),
                 window_start=f("window_start"), window_until=f("window_until"), title=s("title"), text=s("text"),
                 route=s("route"), severity=s("severity"))


_WORDS = "title = :title, #text = :text, route = :route, severity = :severity"


class DynamoAlertStore(DynamoTable):
    """The table named by ALERTS_TABLE (or `table`)."""

    TABLE_ENV = "ALERTS_TABLE"

    def _update(self, problem: str, destination: str, **kwargs: Any) -> dict[str, Any] | None:
        """The UpdateItem's reply, or None when its condition failed."""
        try:
            return self.client.update_item(TableName=self.table,
                                           Key={"alert_key": {"S": window_key(problem, destination)}}, **kwargs)
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise

    @staticmethod
    def _words(occurrence: Occurrence) -> dict[str, dict[str, str]]:
        return {":title": {"S": occurrence.title}, ":text": {"S": occurrence.text},
                ":route": {"S": occurrence.route}, ":severity": {"S": occurrence.severity}}

    def count(self, problem: str, destination: str, occurrence: Occurrence, now: float) -> bool:
        reply = self._update(
            problem, destination,
            UpdateExpression=f"ADD pending :count SET pending_first = if_not_exists(pending_first, :first), "
                             f"pending_last = :last, {_WORDS}, expires_at = :expires",
            ConditionExpression="window_until > :now",
            ExpressionAttributeNames={"#text": "text"},
            ExpressionAttributeValues={":count": {"N": str(occurrence.count)}, ":first": {"S": occurrence.first_at},
                                       ":last": {"S": occurrence.last_at}, ":now": _n(now),
                                       ":expires": {"N": str(int(now) + WINDOW_ITEM_TTL_S)},
                                       **self._words(occurrence)})
        return reply is not None

    def claim(self, problem: str, destination: str, occurrence: Occurrence | None, now: float, window_s: int,
              claim_id: str) -> Prior | None:
        values: dict[str, Any] = {":now": _n(now), ":until": _n(now + window_s), ":claim": {"S": claim_id},
                                  ":lease": _n(now + CLAIM_LEASE_S), ":problem": {"S": problem},
                                  ":destination": {"S": destination},
                                  ":expires": {"N": str(int(now) + WINDOW_ITEM_TTL_S)}}
        sets = ("window_start = :now, window_until = :until, #claim = :claim, claim_until = :lease, "
                "problem = :problem, destination = :destination, expires_at = :expires")
        names = {"#claim": "claim"}
        condition = ("(attribute_not_exists(window_until) OR window_until <= :now) "
                     "AND (attribute_not_exists(claim_until) OR claim_until <= :now)")
        if occurrence is None:
            condition = f"{condition} AND pending > :zero"
            values[":zero"] = {"N": "0"}
        else:
            sets += f", {_WORDS}"
            names["#text"] = "text"
            values.update(self._words(occurrence))
        # The claimed pending occurrences' first time goes with the claim (ALL_OLD); later counts start afresh.
        reply = self._update(problem, destination, UpdateExpression=f"SET {sets} REMOVE pending_first",
                             ConditionExpression=condition, ExpressionAttributeNames=names,
                             ExpressionAttributeValues=values, ReturnValues="ALL_OLD")
        return None if reply is None else _prior(claim_id, reply.get("Attributes", {}))

    def confirm(self, problem: str, destination: str, prior: Prior, told: int, now_iso: str) -> None:
        values = {":told_pending": {"N": str(-prior.pending)}, ":one": {"N": "1"}, ":told": {"N": str(told)},
                  ":now": {"S": now_iso}}
        update = "ADD pending :told_pending, alerts :one, told :told SET last_told_at = :now"
        if self._update(problem, destination, UpdateExpression=f"{update} REMOVE #claim, claim_until",
                        ConditionExpression="#claim = :claim", ExpressionAttributeNames={"#claim": "claim"},
                        ExpressionAttributeValues={**values, ":claim": {"S": prior.claim_id}}) is None:
            # Another claim took the window meanwhile (a send slower than the window): what was told is
            # subtracted all the same, and that claim is left to its holder.
            self._update(problem, destination, UpdateExpression=update, ExpressionAttributeValues=values)

    def release(self, problem: str, destination: str, prior: Prior) -> None:
        sets, removes = [], ["#claim", "claim_until"]
        values: dict[str, Any] = {":claim": {"S": prior.claim_id}}
        if prior.window_until is None:
            removes += ["window_until", "window_start"]
        else:
            sets += ["window_until = :until", "window_start = :start"]
            values[":until"] = _n(prior.window_until)
            values[":start"] = _n(prior.window_start if prior.window_start is not None else prior.window_until)
        if prior.pending_first:  # the claimed occurrences are pending again, and they came first
            sets.append("pending_first = :first")
            values[":first"] = {"S": prior.pending_first}
        expression = (f"SET {', '.join(sets)} " if sets else "") + f"REMOVE {', '.join(removes)}"
        self._update(problem, destination, UpdateExpression=expression, ConditionExpression="#claim = :claim",
                     ExpressionAttributeNames={"#claim": "claim"}, ExpressionAttributeValues=values)

    def due(self, now: float) -> list[Due]:
        """A Scan: the table holds one item per (problem, destination) seen in the last week."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ProjectionExpression": "problem, destination",
            "FilterExpression": "pending > :zero AND (attribute_not_exists(window_until) OR window_until <= :now)",
            "ExpressionAttributeValues": {":zero": {"N": "0"}, ":now": _n(now)}}
        found: list[Due] = []
        while True:
            page = self.client.scan(**kwargs)
            found += [Due(i["problem"]["S"], i["destination"]["S"]) for i in page.get("Items", [])
                      if "problem" in i and "destination" in i]
            if "LastEvaluatedKey" not in page:
                return sorted(found, key=lambda d: (d.problem, d.destination))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def recall(self, alert_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        keys = sorted({record_key(i) for i in alert_ids if i})
        found: dict[str, frozenset[str]] = {}
        for start in range(0, len(keys), BATCH_GET_MAX):
            chunk = keys[start:start + BATCH_GET_MAX]
            request: dict[str, Any] = {self.table: {"Keys": [{"alert_key": {"S": k}} for k in chunk],
                                                    "ProjectionExpression": "alert_key, done"}}
            while request:
                reply = self.client.batch_get_item(RequestItems=request)
                for item in reply.get("Responses", {}).get(self.table, []):
                    alert_id = item["alert_key"]["S"].removeprefix(RECORD_PREFIX)
                    found[alert_id] = frozenset(item.get("done", {}).get("SS", ()))
                request = reply.get("UnprocessedKeys") or {}
        return found

    def remember(self, alert_id: str, destinations: Iterable[str], now: float) -> None:
        done = sorted(set(destinations))
        if not done:
            return
        self.client.update_item(TableName=self.table, Key={"alert_key": {"S": record_key(alert_id)}},
                                UpdateExpression="ADD done :done SET expires_at = :expires",
                                ExpressionAttributeValues={":done": {"SS": done},
                                                           ":expires": {"N": str(int(now) + RECORD_ITEM_TTL_S)}})


@dataclass
class _Window:
    window_start: float | None = None
    window_until: float | None = None
    claim: str = ""
    claim_until: float | None = None
    pending: int = 0
    pending_first: str = ""
    pending_last: str = ""
    last_told_at: str = ""
    title: str = ""
    text: str = ""
    route: str = ""
    severity: str = ""
    alerts: int = 0
    told: int = 0


class MemoryAlertStore:
    """The same conditions over dicts, one lock: for unit tests and benchmarks."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, str], _Window] = {}
        self.records: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _open(self, w: _Window | None, now: float) -> bool:
        return w is not None and w.window_until is not None and w.window_until > now

    def count(self, problem: str, destination: str, occurrence: Occurrence, now: float) -> bool:
        with self._lock:
            w = self.windows.get((problem, destination))
            if w is None or not self._open(w, now):
                return False
            w.pending += occurrence.count
            w.pending_first = w.pending_first or occurrence.first_at
            w.pending_last = occurrence.last_at
            w.title, w.text, w.route, w.severity = (occurrence.title, occurrence.text, occurrence.route,
                                                    occurrence.severity)
            return True

    def claim(self, problem: str, destination: str, occurrence: Occurrence | None, now: float, window_s: int,
              claim_id: str) -> Prior | None:
        with self._lock:
            w = self.windows.setdefault((problem, destination), _Window())
            leased = w.claim_until is not None and w.claim_until > now
            if self._open(w, now) or leased or (occurrence is None and w.pending <= 0):
                return None
            prior = Prior(claim_id, w.pending, w.pending_first, w.pending_last, w.last_told_at, w.window_start,
                          w.window_until, w.title, w.text, w.route, w.severity)
            w.window_start, w.window_until, w.pending_first = now, now + window_s, ""
            w.claim, w.claim_until = claim_id, now + CLAIM_LEASE_S
            if occurrence is not None:
                w.title, w.text, w.route, w.severity = (occurrence.title, occurrence.text, occurrence.route,
                                                        occurrence.severity)
            return prior

    def confirm(self, problem: str, destination: str, prior: Prior, told: int, now_iso: str) -> None:
        with self._lock:
            w = self.windows[(problem, destination)]
            w.pending -= prior.pending
            w.alerts += 1
            w.told += told
            w.last_told_at = now_iso
            if w.claim == prior.claim_id:
                w.claim, w.claim_until = "", None

    def release(self, problem: str, destination: str, prior: Prior) -> None:
        with self._lock:
            w = self.windows[(problem, destination)]
            if w.claim != prior.claim_id:
                return
            w.window_until = prior.window_until
            w.window_start = prior.window_start if prior.window_until is not None else None
            w.claim, w.claim_until = "", None
            if prior.pending_first:
                w.pending_first = prior.pending_first

    def due(self, now: float) -> list[Due]:
        with self._lock:
            return sorted(Due(p, d) for (p, d), w in self.windows.items()
                          if w.pending > 0 and (w.window_until is None or w.window_until <= now))

    def recall(self, alert_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        with self._lock:
            return {i: frozenset(self.records[i]) for i in alert_ids if i in self.records}

    def remember(self, alert_id: str, destinations: Iterable[str], now: float) -> None:
        with self._lock:
            done = set(destinations)
            if done:
                self.records.setdefault(alert_id, set()).update(done)

    def snapshot(self) -> dict[tuple[str, str], _Window]:
        with self._lock:
            return {k: replace(w) for k, w in self.windows.items()}
