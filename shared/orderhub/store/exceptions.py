"""The exceptions table: one item per raised exception (pk `order_id`, sk `exception_key`).

Index `by-state` (pk `state`, sk `sla_deadline`) lists them by state, the nearest deadline first.

Every change is one conditional write, so two operators (or an operator and the watchdog)
never overwrite each other:

- `create`: only if no exception has the key (raising the same occurrence twice is a no-op);
- `acknowledge`: only while open; `resolve`: only while open or acknowledged (resolving twice is
  refused: `WrongState`), `escalate`: only once, while unresolved;
- `mark_alerted`: records that the owner / supervisor was told (the watchdog re-sends until it is).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, Protocol

from orderhub.exceptions.model import (
    UNRESOLVED,
    ExceptionNotFound,
    ExceptionRecord,
    ExceptionState,
    ExceptionType,
    WrongState,
)
from orderhub.store import DynamoTable, is_condition_failure
from orderhub.store.attributes import from_item, to_attr, to_item

BY_STATE_INDEX = "by-state"  # infra/topology.py declares it (a unit test keeps the two in step)
Alerted = Literal["owner_alerted_at", "supervisor_alerted_at"]


class ExceptionStore(Protocol):
    def get(self, order_id: str, key: str) -> ExceptionRecord | None: ...
    def of_order(self, order_id: str) -> list[ExceptionRecord]: ...
    def create(self, record: ExceptionRecord) -> bool: ...
    def in_state(self, state: ExceptionState, *, of_type: ExceptionType | None = None, limit: int | None = None,
                 nearest_first: bool = True) -> tuple[list[ExceptionRecord], bool]: ...
    def acknowledge(self, order_id: str, key: str, by: str, at: str) -> ExceptionRecord: ...
    def resolve(self, order_id: str, key: str, by: str, note: str, at: str) -> ExceptionRecord: ...
    def escalate(self, order_id: str, key: str, at: str) -> ExceptionRecord | None: ...
    def mark_alerted(self, order_id: str, key: str, field: Alerted, at: str) -> None: ...
    def scan(self) -> list[ExceptionRecord]: ...


def unresolved(store: ExceptionStore) -> list[ExceptionRecord]:
    """Every open and acknowledged exception (all pages)."""
    return [r for state in UNRESOLVED for r in store.in_state(state)[0]]


def record_to_item(record: ExceptionRecord) -> dict[str, Any]:
    return to_item(record.model_dump(mode="json", exclude_none=True, exclude={"exception_id"}))


def record_from_item(item: dict[str, Any]) -> ExceptionRecord:
    return ExceptionRecord.model_validate(from_item(item))



_NAMES = {"#state": "state"}


class DynamoExceptionStore(DynamoTable):
    TABLE_ENV = "EXCEPTIONS_TABLE"

    @staticmethod
    def _key(order_id: str, key: str) -> dict[str, Any]:
        return {"order_id": {"S": order_id}, "exception_key": {"S": key}}

    def get(self, order_id: str, key: str) -> ExceptionRecord | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(order_id, key), ConsistentRead=True).get("Item")
        return record_from_item(item) if item else None

    def of_order(self, order_id: str) -> list[ExceptionRecord]:
        return [record_from_item(i) for i in self._pages(
            {"TableName": self.table, "KeyConditionExpression": "order_id = :o", "ConsistentRead": True,
             "ExpressionAttributeValues": {":o": {"S": order_id}}})]

    def create(self, record: ExceptionRecord) -> bool:
        try:
            self.client.put_item(TableName=self.table, Item=record_to_item(record),
                                 ConditionExpression="attribute_not_exists(order_id)")
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def in_state(self, state: ExceptionState, *, of_type: ExceptionType | None = None, limit: int | None = None,
                 nearest_first: bool = True) -> tuple[list[ExceptionRecord], bool]:
        """Exceptions in `state` by SLA deadline (nearest first, or latest first); `limit` reached: truncated."""
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": BY_STATE_INDEX, "KeyConditionExpression": "#state = :s",
            "ExpressionAttributeNames": dict(_NAMES), "ExpressionAttributeValues": {":s": {"S": state.value}},
            "ScanIndexForward": nearest_first}
        if of_type is not None:
            request["FilterExpression"] = "#type = :t"
            request["ExpressionAttributeNames"]["#type"] = "type"
            request["ExpressionAttributeValues"][":t"] = {"S": of_type.value}
        found: list[ExceptionRecord] = []
        for item in self._pages(request):
            if limit is not None and len(found) >= limit:
                return found, True
            found.append(record_from_item(item))
        return found, False

    def _update(self, order_id: str, key: str, expression: str, condition: str, values: dict[str, Any],
                names: dict[str, str] | None = None) -> ExceptionRecord | None:
        """Apply a conditional update; the new record, or None when the condition failed."""
        condition = f"attribute_exists(order_id) AND ({condition})"
        used = {k: v for k, v in {**_NAMES, **(names or {})}.items() if k in expression or k in condition}
        try:
            reply = self.client.update_item(
                TableName=self.table, Key=self._key(order_id, key), UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeNames=used,
                ExpressionAttributeValues={k: to_attr(v) for k, v in values.items()},
                ReturnValues="ALL_NEW")
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return record_from_item(reply["Attributes"])

    def _refused(self, order_id: str, key: str, wanted: str) -> Exception:
        current = self.get(order_id, key)
        return ExceptionNotFound(f"{order_id}/{key}") if current is None else WrongState(current, wanted)

    def acknowledge(self, order_id: str, key: str, by: str, at: str) -> ExceptionRecord:
        done = self._update(order_id, key, "SET #state = :ack, acknowledged_at = :at, acknowledged_by = :by",
                            "#state = :open", {":ack": ExceptionState.ACKNOWLEDGED.value, ":at": at, ":by": by,
                                               ":open": ExceptionState.OPEN.value})
        if done is None:
            raise self._refused(order_id, key, "acknowledge")
        return done

    def resolve(self, order_id: str, key: str, by: str, note: str, at: str) -> ExceptionRecord:
        done = self._update(
            order_id, key, "SET #state = :resolved, resolved_at = :at, resolved_by = :by, resolution_note = :note",
            "#state IN (:open, :ack)",
            {":resolved": ExceptionState.RESOLVED.value, ":at": at, ":by": by, ":note": note,
             ":open": ExceptionState.OPEN.value, ":ack": ExceptionState.ACKNOWLEDGED.value})
        if done is None:
            raise self._refused(order_id, key, "resolve")
        return done

    def escalate(self, order_id: str, key: str, at: str) -> ExceptionRecord | None:
        return self._update(order_id, key, "SET escalated_at = :at",
                            "attribute_not_exists(escalated_at) AND #state IN (:open, :ack)",
                            {":at": at, ":open": ExceptionState.OPEN.value, ":ack": ExceptionState.ACKNOWLEDGED.value})

    def mark_alerted(self, order_id: str, key: str, field: Alerted, at: str) -> None:
        self._update(order_id, key, "SET #f = :at", "attribute_not_exists(#f)", {":at": at}, {"#f": field})

    def scan(self) -> list[ExceptionRecord]:
        """Every exception (operator reports: a Scan, billed per item read)."""
        return [record_from_item(i) for i in self._pages({"TableName": self.table})]

    def _pages(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        read = self.client.query if "KeyConditionExpression" in request else self.client.scan
        while True:
            reply = read(**request)
            yield from reply.get("Items", [])
            if "LastEvaluatedKey" not in reply:
                return
            request = {**request, "ExclusiveStartKey": reply["LastEvaluatedKey"]}


class MemoryExceptionStore:
    """The same contract and conditions in a dict: for unit tests."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], ExceptionRecord] = {}
        self.writes = 0

    def get(self, order_id: str, key: str) -> ExceptionRecord | None:
        return self.items.get((order_id, key))

    def of_order(self, order_id: str) -> list[ExceptionRecord]:
        return sorted((r for (o, _), r in self.items.items() if o == order_id), key=lambda r: r.exception_key)

    def create(self, record: ExceptionRecord) -> bool:
        if (record.order_id, record.exception_key) in self.items:
            return False
        self.items[(record.order_id, record.exception_key)] = record
        self.writes += 1
        return True

    def in_state(self, state: ExceptionState, *, of_type: ExceptionType | None = None, limit: int | None = None,
                 nearest_first: bool = True) -> tuple[list[ExceptionRecord], bool]:
        found = sorted((r for r in self.items.values() if r.state is state and (of_type is None or r.type is of_type)),
                       key=lambda r: (r.sla_deadline, r.order_id, r.exception_key), reverse=not nearest_first)
        if limit is not None and len(found) > limit:
            return found[:limit], True
        return found, False

    def _change(self, order_id: str, key: str, allowed: tuple[ExceptionState, ...], wanted: str,
                **update: Any) -> ExceptionRecord:
        current = self.items.get((order_id, key))
        if current is None:
            raise ExceptionNotFound(f"{order_id}/{key}")
        if current.state not in allowed:
            raise WrongState(current, wanted)
        self.items[(order_id, key)] = new = current.model_copy(update=update)
        self.writes += 1
        return new

    def acknowledge(self, order_id: str, key: str, by: str, at: str) -> ExceptionRecord:
        return self._change(order_id, key, (ExceptionState.OPEN,), "acknowledge",
                            state=ExceptionState.ACKNOWLEDGED, acknowledged_at=at, acknowledged_by=by)

    def resolve(self, order_id: str, key: str, by: str, note: str, at: str) -> ExceptionRecord:
        return self._change(order_id, key, UNRESOLVED, "resolve", state=ExceptionState.RESOLVED, resolved_at=at,
                            resolved_by=by, resolution_note=note)

    def escalate(self, order_id: str, key: str, at: str) -> ExceptionRecord | None:
        current = self.items.get((order_id, key))
        if current is None or current.escalated_at is not None or not current.unresolved:
            return None
        return self._change(order_id, key, UNRESOLVED, "escalate", escalated_at=at)

    def mark_alerted(self, order_id: str, key: str, field: Alerted, at: str) -> None:
        current = self.items.get((order_id, key))
        if current is not None and getattr(current, field) is None:
            self.items[(order_id, key)] = current.model_copy(update={field: at})
            self.writes += 1

    def scan(self) -> list[ExceptionRecord]:
        return list(self.items.values())
