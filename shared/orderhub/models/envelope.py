"""The intake queue message: a channel request exactly as received, plus where and when."""

from __future__ import annotations

import base64
from functools import cached_property

from pydantic import BaseModel, ConfigDict


class IntakeMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: str
    received_at: str  # UTC ISO, hub clock
    request_id: str
    source_ip: str
    headers: dict[str, str]  # the channel's kept headers only (signature, timestamp, ...)
    body_b64: str
    replay_of: str | None = None  # set when re-fed from the event log (ING-8)

    @cached_property
    def body(self) -> bytes:  # read by the parse and by every event's log entry: decoded once
        return base64.b64decode(self.body_b64)

    @classmethod
    def wrap(cls, channel: str, received_at: str, request_id: str, source_ip: str,
             headers: dict[str, str], body: bytes, replay_of: str | None = None) -> IntakeMessage:
        return cls(channel=channel, received_at=received_at, request_id=request_id, source_ip=source_ip,
                   headers=headers, body_b64=base64.b64encode(body).decode("ascii"), replay_of=replay_of)
