"""POST /webhooks/<channel>: authenticate, validate, enqueue durably, then acknowledge.

Each push channel has its own route (infra/topology.py), so the channel is the matched route's, named
by API Gateway; `{channel}` path parameters (replays, tests) are read too. Metric dimensions and log
fields take only a channel name the hub knows, never the raw URL (junk names would each make a metric).

A failure of the hub's own (queue, key or configuration unreachable) answers 503 with Retry-After: the
channel retries, nothing was stored. It is not raised: Lambda's error metric stays "the function
crashed", and the failure is seen by `WebhookStoreFailed` and by API Gateway's 5xx per route, both
alarmed (infra/cdk/constructs/monitoring.py).
"""

from __future__ import annotations

import base64
from typing import Any

from orderhub import settings
from orderhub.channels import CHANNEL_MODULES
from orderhub.channels.base import InboundRequest
from orderhub.clock import SystemClock
from orderhub.intake import IntakeQueue, accept_webhook
from orderhub.observability import http_request_id, lambda_entry, logger, metrics

_clock = SystemClock()
_queue: IntakeQueue | None = None
_ROUTE_PREFIX = "POST /webhooks/"
UNKNOWN_CHANNEL = "unknown"


def _intake_queue() -> IntakeQueue:
    global _queue
    if _queue is None:
        _queue = IntakeQueue(settings.env("INTAKE_QUEUE_URL"))
    return _queue


def channel_of(event: dict[str, Any]) -> str:
    """The channel the request was routed for: the `{channel}` parameter, else the route key's last segment."""
    params = event.get("pathParameters") or {}
    if "channel" in params:
        return params["channel"]
    route_key = event.get("routeKey", "")
    return route_key[len(_ROUTE_PREFIX):] if route_key.startswith(_ROUTE_PREFIX) else ""


def known_channel(channel: str) -> str:
    """The channel as a metric dimension or log field: a name the hub knows, or "unknown"."""
    return channel if channel in CHANNEL_MODULES else UNKNOWN_CHANNEL


def _failure(exc: Exception) -> dict[str, str]:
    """What and where, without the exception's text: it may quote the request (a validation error
    repeats its input), and requests carry personal data."""
    import traceback  # only on the failure path

    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    code = getattr(exc, "response", None)
    error_code = code.get("Error", {}).get("Code", "") if isinstance(code, dict) else ""  # botocore ClientError
    return {"error": type(exc).__name__, "error_code": str(error_code)[:64],
            "at": f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}" if frame else ""}


def _inbound(event: dict[str, Any]) -> InboundRequest:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    return InboundRequest(
        channel=channel_of(event),
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        body=raw,
        source_ip=event.get("requestContext", {}).get("http", {}).get("sourceIp", ""),
        query=event.get("queryStringParameters") or {},
    )


@lambda_entry(correlation_id=http_request_id)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = _inbound(event)
    request_id = event.get("requestContext", {}).get("requestId", "")
    channel = known_channel(request.channel)
    metrics.add_dimension(name="channel", value=channel)
    try:
        result = accept_webhook(request, request_id, settings.channel_config, _intake_queue(), _clock)
    except Exception as exc:
        # Nothing was stored: a 5xx makes the channel retry, which is what it is for.
        logger.error("webhook not stored", extra={"channel": channel, **_failure(exc)})
        metrics.add_metric(name="WebhookStoreFailed", unit="Count", value=1)
        return {"statusCode": 503, "headers": {"Content-Type": "application/json", "Retry-After": "5"},
                "body": '{"message":"temporarily unable to store the request, retry"}'}
    if result.rejection:
        logger.warning("webhook rejected", extra={"channel": channel, "status": result.reply.status_code,
                                                  "reason": result.rejection, "source_ip": request.source_ip})
        metrics.add_metric(name="WebhookRejected", unit="Count", value=1)
    else:
        # One metric on the hot path (API Gateway already counts requests per route).
        metrics.add_metric(name="ChannelEventsAccepted", unit="Count", value=result.accepted_events)
    return {"statusCode": result.reply.status_code, "headers": {"Content-Type": result.reply.content_type},
            "body": result.reply.body}
