"""Accepting a channel webhook: authenticate, validate, enqueue durably, then acknowledge.

Nothing here writes anywhere but the intake queue, and only after every check passed: a
rejected request leaves nothing behind, an accepted one is acknowledged only once SQS holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderhub.channels import UnknownChannel, get_channel
from orderhub.channels.base import ChannelRejection, ChannelSettings, InboundRequest, Malformed, Reply, TooLarge
from orderhub.clock import UNDATED, Clock, channel_time_refusal, utc_iso
from orderhub.intake_batch import MAX_MESSAGE_BYTES
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import OrderEvent


@dataclass(frozen=True)
class IntakeResult:
    reply: Reply
    accepted_events: int = 0
    rejection: str | None = None


SettingsSource = Callable[[str], ChannelSettings]


def event_time_refusal(event: OrderEvent, now: datetime) -> str | None:
    """Why a time the event carries cannot be the channel's (clock.channel_time_refusal), or None: a time
    past the window around the hub clock would hold its order against every real event after it."""
    if event.event_time == UNDATED and not event.kinds and any(g.startswith("time") for g in event.gaps):
        return None  # the channel sent no time: logged as a gap, it changes nothing
    for at in (event.event_time, *event.milestone_times.values()):
        refusal = channel_time_refusal(at, now)
        if refusal is not None:
            return f"event {event.event_id[:64]}: {refusal}"
    return None


def check_event_times(events: Sequence[OrderEvent], now: datetime) -> None:
    """A webhook whose events carry a time outside the window is refused whole (400)."""
    for event in events:
        refusal = event_time_refusal(event, now)
        if refusal is not None:
            raise Malformed(refusal)


class IntakeQueue:
    """The durable hand-off to the status mapper (SQS)."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self._url = queue_url
        self._client = client

    def send(self, message: IntakeMessage) -> None:
        if self._client is None:
            from orderhub.aws import client

            self._client = client("sqs")
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=message.sqs_body(MAX_MESSAGE_BYTES),
            MessageAttributes={"channel": {"DataType": "String", "StringValue": message.channel}},
        )


def accept_webhook(
    request: InboundRequest,
    request_id: str,
    settings_for: SettingsSource,
    queue: IntakeQueue,
    clock: Clock,
) -> IntakeResult:
    try:
        channel = get_channel(request.channel)
    except UnknownChannel:
        channel = None
    if channel is None or not channel.push:
        # Pulled and file channels have no webhook: the same answer as a channel that does not exist.
        return IntakeResult(Reply(404, '{"message":"unknown channel"}'), rejection="unknown channel")
    try:
        channel.check_size(request)
        settings = settings_for(channel.name)
        channel.check_source_ip(request, settings)
        now = clock.now()
        channel.authenticate(request, settings, now)
        events = channel.parse_with(request.body, request.headers, settings)
        check_event_times(events, now)
    except ChannelRejection as rejection:
        return IntakeResult(channel.rejected(rejection), rejection=rejection.reason)

    if not events:
        # A platform's test or ping message (Douyin tag 0, WooCommerce's ping, Shopify compliance
        # topics): acknowledged, nothing to keep.
        return IntakeResult(channel.accepted())
    kept = {name: request.headers[name] for name in channel.kept_headers if name in request.headers}
    # The parsed events travel with the body: the status mapper maps them without parsing again.
    message = IntakeMessage.wrap(channel.name, utc_iso(now), request_id, request.source_ip, kept, request.body,
                                 events=tuple(events))
    if not message.fits(MAX_MESSAGE_BYTES):
        # Incompressible text near the body limit: no retry can make it fit, so it is the sender's to shrink.
        too_large = TooLarge(f"body cannot be kept: over {MAX_MESSAGE_BYTES} bytes queued even compressed")
        return IntakeResult(channel.rejected(too_large), rejection=too_large.reason)
    queue.send(message)
    return IntakeResult(channel.accepted(), accepted_events=len(events))
