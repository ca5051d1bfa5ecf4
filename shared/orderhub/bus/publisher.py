"""Publishing to the event bus, as a port: EventBridge in AWS, a list in unit tests."""

from __future__ import annotations

from typing import Any, Protocol

from orderhub.bus.domain_events import BusEntry

PUT_EVENTS_MAX_ENTRIES = 10


class PublishError(RuntimeError):
    """Some entries were not published: `unpublished` holds exactly those (a superset when the
    bus could not be reached at all, since then no entry of the call is known to be accepted)."""

    def __init__(self, message: str, unpublished: tuple[BusEntry, ...] = ()) -> None:
        super().__init__(message)
        self.unpublished = unpublished


class EventPublisher(Protocol):
    def publish(self, entries: list[BusEntry]) -> None:
        """All entries accepted, or PublishError naming those that were not."""


class EventBridgePublisher:
    def __init__(self, bus_name: str, client: Any = None) -> None:
        self._bus = bus_name
        self._client = client

    def publish(self, entries: list[BusEntry]) -> None:
        if self._client is None:
            from orderhub.aws import client

            self._client = client("events")
        from botocore.exceptions import BotoCoreError, ClientError

        unpublished: list[BusEntry] = []
        codes: set[str] = set()
        for start in range(0, len(entries), PUT_EVENTS_MAX_ENTRIES):
            chunk = entries[start:start + PUT_EVENTS_MAX_ENTRIES]
            try:
                reply = self._client.put_events(Entries=[e.to_put_events_entry(self._bus) for e in chunk])
            except (ClientError, BotoCoreError) as exc:
                # botocore has used up its retries: the bus is out of reach, so is every later chunk.
                code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
                raise PublishError(f"{len(entries) - start} of {len(entries)} entries not sent: {code}",
                                   tuple(unpublished) + tuple(entries[start:])) from exc
            # PutEvents can fail per entry with HTTP 200: the count is the only signal, and the
            # results are in request order, so a failed result names its entry.
            if reply.get("FailedEntryCount", 0):
                results = reply.get("Entries", [])
                if len(results) != len(chunk):  # cannot tell which: all of them again (ids dedupe)
                    refused = list(chunk)
                    codes.add("unattributed")
                else:
                    refused = [e for e, r in zip(chunk, results, strict=True) if r.get("ErrorCode")]
                    codes.update(r["ErrorCode"] for r in results if r.get("ErrorCode"))
                unpublished += refused
        if unpublished:
            raise PublishError(f"{len(unpublished)} of {len(entries)} entries failed: {sorted(codes)}",
                               tuple(unpublished))


class InMemoryPublisher:
    def __init__(self) -> None:
        self.published: list[BusEntry] = []

    def publish(self, entries: list[BusEntry]) -> None:
        self.published.extend(entries)
