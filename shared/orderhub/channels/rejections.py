"""The errors a channel raises for a request the hub refuses; ingest turns them into 4xx replies."""

from __future__ import annotations


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
