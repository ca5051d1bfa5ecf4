"""POST /webhooks/{channel}: authenticate, validate, enqueue durably, then acknowledge."""

from __future__ import annotations

import base64
from typing import Any

from orderhub import settings
from orderhub.channels.base import InboundRequest
from orderhub.clock import SystemClock
from orderhub.intake import IntakeQueue, accept_webhook
from orderhub.observability import http_request_id, lambda_entry, logger, metrics

_clock = SystemClock()
_queue: IntakeQueue | None = None


def _intake_queue() -> IntakeQueue:
    global _queue
    if _queue is None:
        _queue = IntakeQueue(settings.env("INTAKE_QUEUE_URL"))
    return _queue


def _inbound(event: dict[str, Any]) -> InboundRequest:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    return InboundRequest(
        channel=(event.get("pathParameters") or {}).get("channel", ""),
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        body=raw,
        source_ip=event.get("requestContext", {}).get("http", {}).get("sourceIp", ""),
        query=event.get("queryStringParameters") or {},
    )


@lambda_entry(correlation_id=http_request_id)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = _inbound(event)
    request_id = event.get("requestContext", {}).get("requestId", "")
    metrics.add_dimension(name="channel", value=request.channel[:32] or "none")
    try:
        result = accept_webhook(request, request_id, settings.channel_config, _intake_queue(), _clock)
    except Exception:
        # Nothing was stored: a 5xx makes the channel retry, which is what it is for.
        logger.exception("webhook not stored", extra={"channel": request.channel})
        metrics.add_metric(name="WebhookStoreFailed", unit="Count", value=1)
        return {"statusCode": 503, "headers": {"Content-Type": "application/json", "Retry-After": "5"},
                "body": '{"message":"temporarily unable to store the request, retry"}'}
    if result.rejection:
        logger.warning("webhook rejected", extra={"channel": request.channel, "status": result.reply.status_code,
                                                  "reason": result.rejection, "source_ip": request.source_ip})
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
    else:
        # One metric on the hot path (API Gateway already counts requests per route).
        metrics.add_metric(name="ChannelEventsAccepted", unit="Count", value=result.accepted_events)
    return {"statusCode": result.reply.status_code, "headers": {"Content-Type": result.reply.content_type},
            "body": result.reply.body}
