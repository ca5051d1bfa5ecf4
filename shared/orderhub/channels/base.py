"""What every channel module provides, and the errors ingest turns into 4xx replies.

A channel module is one file in this package exposing `CHANNEL`, an instance of a `Channel`
subclass. Adding a channel is adding a module and its entry in `channels.registry`; nothing
else in the pipeline knows one channel from another.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orderhub.models.order import OrderEvent


class ChannelRejection(Exception):
    """A request the hub refuses. `reason` is safe to return to the caller and to log."""

    status_code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(ChannelRejection):
    status_code = 401


class Malformed(ChannelRejection):
    status_code = 400


class TooLarge(ChannelRejection):
    status_code = 413


@dataclass(frozen=True)
class InboundRequest:
    """A webhook call as the hub saw it. Header names are lower-case."""

    channel: str
    headers: Mapping[str, str]
    body: bytes
    source_ip: str
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelSettings:
    secrets: Sequence[str]
    timestamp_tolerance_s: int = 300
    allowed_ips: Sequence[str] = ()


@dataclass(frozen=True)
class Reply:
    status_code: int
    body: str
    content_type: str = "application/json"


class Channel:
    """Base for channel modules. Subclasses set the class attributes and implement the hooks."""

    name: str
    max_body_bytes: int = 256 * 1024
    # Headers kept with the raw body so a stored request can be verified and replayed as it came.
    kept_headers: tuple[str, ...] = ()
    # Channel event code -> EventKind name. Data, not code: a new code is a new row here.
    status_map: Mapping[str, str] = {}

    def authenticate(self, request: InboundRequest, settings: ChannelSettings, now: datetime) -> None:
        raise NotImplementedError

    def parse(self, body: bytes, received_headers: Mapping[str, str] | None = None) -> list[OrderEvent]:
        """Channel payload -> normalised events. Raises Malformed with what is wrong."""
        raise NotImplementedError

    def accepted(self) -> Reply:
        raise NotImplementedError

    def rejected(self, rejection: ChannelRejection) -> Reply:
        return Reply(rejection.status_code, compact_json({"message": rejection.reason}))

    # Shared by every channel -----------------------------------------------------------

    def check_source_ip(self, request: InboundRequest, settings: ChannelSettings) -> None:
        if not settings.allowed_ips:
            return
        try:
            ip = ipaddress.ip_address(request.source_ip)
        except ValueError as exc:
            raise Unauthorized("source IP not allowed") from exc
        if not any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in settings.allowed_ips):
            raise Unauthorized("source IP not allowed")

    def check_size(self, request: InboundRequest) -> None:
        if len(request.body) > self.max_body_bytes:
            raise TooLarge(f"body larger than {self.max_body_bytes} bytes")


def compact_json(value: object) -> str:
    """Reply bodies as channels expect them: no spaces, UTF-8 left as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def constant_time_match(expected_candidates: Sequence[str], presented: str) -> bool:
    """True if `presented` equals any candidate; each comparison takes constant time."""
    matched = False
    for candidate in expected_candidates:
        matched |= hmac.compare_digest(candidate.encode(), presented.encode())
    return matched
