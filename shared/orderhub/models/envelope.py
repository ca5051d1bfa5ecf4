"""The intake queue message: a channel request exactly as received, plus where and when."""

from __future__ import annotations

import base64
import zlib
from functools import cached_property

from pydantic import BaseModel, ConfigDict

from orderhub.models.order import OrderEvent
from orderhub.store.attributes import compress


class IntakeMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: str
    received_at: str  # UTC ISO, hub clock
    request_id: str
    source_ip: str
    headers: dict[str, str]  # the channel's kept headers only (signature, timestamp, ...)
    body_b64: str  # the body, or with body_zlib its zlib stream
    body_zlib: bool = False
    replay_of: str | None = None  # set when re-fed from the event log (ING-8)
    # The events webhook ingest parsed from the body (drift listed), so that the status mapper does
    # not parse it a second time. None: the mapper parses the body (replays, pulled orders, imports).
    events: tuple[OrderEvent, ...] | None = None

    @cached_property
    def body(self) -> bytes:  # read by the parse and by every event's log entry: decoded once
        packed = base64.b64decode(self.body_b64)
        return zlib.decompress(packed) if self.body_zlib else packed

    def sqs_body(self, max_bytes: int) -> str:
        """The message as an SQS body of at most `max_bytes` where it can be: as it is; else without the
        parsed events (the mapper parses the body); else with the body compressed too (a 256 KB order
        is 340 KB in base64, over the queue's default limit; compressed, a fraction of it). A message
        still too large would be refused by SQS: webhook ingest checks `fits` first and answers 413."""
        body = self.model_dump_json()
        if len(body) <= max_bytes // 4 or len(body.encode()) <= max_bytes:  # a character is at most 4 bytes
            return body
        smaller = self
        if self.events is not None:
            smaller = self.model_copy(update={"events": None})
            body = smaller.model_dump_json()
            if len(body.encode()) <= max_bytes:
                return body
        if not self.body_zlib:
            packed = compress(self.body)
            body = smaller.model_copy(update={"body_b64": base64.b64encode(packed).decode("ascii"),
                                              "body_zlib": True}).model_dump_json()
        return body

    def fits(self, max_bytes: int) -> bool:
        """Whether `sqs_body(max_bytes)` is within `max_bytes`. A body under half the limit always is (the
        parsed events go before the body would fail, and the rest of the envelope is small), so only a
        body near the channels' 256 KiB limit is serialised to tell."""
        if len(self.body_b64) < max_bytes // 2:
            return True
        return len(self.sqs_body(max_bytes).encode()) <= max_bytes

    @classmethod
    def wrap(cls, channel: str, received_at: str, request_id: str, source_ip: str,
             headers: dict[str, str], body: bytes, replay_of: str | None = None,
             events: tuple[OrderEvent, ...] | None = None) -> IntakeMessage:
        return cls(channel=channel, received_at=received_at, request_id=request_id, source_ip=source_ip,
                   headers=headers, body_b64=base64.b64encode(body).decode("ascii"), replay_of=replay_of,
                   events=events)
