"""Publishing to the event bus, as a port: EventBridge in AWS, a list in unit tests."""

from __future__ import annotations

from typing import Any, Protocol

from orderhub.bus.domain_events import BusEntry

PUT_EVENTS_MAX_ENTRIES = 10


class PublishError(RuntimeError):
    pass


class EventPublisher(Protocol):
    def publish(self, entries: list[BusEntry]) -> None:
        """All entries accepted, or PublishError."""


class EventBridgePublisher:
    def __init__(self, bus_name: str, client: Any = None) -> None:
        self._bus = bus_name
        self._client = client

    def publish(self, entries: list[BusEntry]) -> None:
        if self._client is None:
            from orderhub.aws import client

            self._client = client("events")
        for start in range(0, len(entries), PUT_EVENTS_MAX_ENTRIES):
            chunk = entries[start:start + PUT_EVENTS_MAX_ENTRIES]
            reply = self._client.put_events(Entries=[e.to_put_events_entry(self._bus) for e in chunk])
            # PutEvents can fail per entry with HTTP 200: the count is the only signal.
            if reply.get("FailedEntryCount", 0):
                codes = {r.get("ErrorCode") for r in reply.get("Entries", []) if r.get("ErrorCode")}
                raise PublishError(f"{reply['FailedEntryCount']} of {len(chunk)} entries failed: {sorted(codes)}")


class InMemoryPublisher:
    def __init__(self) -> None:
        self.published: list[BusEntry] = []

    def publish(self, entries: list[BusEntry]) -> None:
        self.published.extend(entries)
