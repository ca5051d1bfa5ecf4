"""Operations API: GET /orders/{order_id}, GET /orders?channel=&channel_order_id=, GET /orders/{order_id}/timeline."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from orderhub import settings
from orderhub.channels.base import constant_time_match
from orderhub.clock import SystemClock
from orderhub.lifecycle.machine import hub_order_id
from orderhub.observability import http_request_id, lambda_entry
from orderhub.orders_view import order_view, timeline_view
from orderhub.store.orders import DynamoOrderStore

app = APIGatewayHttpResolver()
_store = DynamoOrderStore()
_clock = SystemClock()


def _json(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type="application/json", body=body)


def _not_found(order_id: str) -> Response:
    return _json(404, {"message": f"order {order_id} not found"})


@app.get("/orders/<order_id>")
def get_order(order_id: str) -> Response:
    order = _store.get_order(order_id)
    return _json(200, order_view(order)) if order else _not_found(order_id)


@app.get("/orders")
def find_order() -> Response:
    channel = app.current_event.get_query_string_value("channel", "")
    channel_order_id = app.current_event.get_query_string_value("channel_order_id", "")
    if not channel or not channel_order_id:
        return _json(400, {"message": "channel and channel_order_id are required"})
    order = _store.get_order(hub_order_id(channel, channel_order_id))
    return _json(200, order_view(order)) if order else _not_found(f"{channel}/{channel_order_id}")


@app.get("/orders/<order_id>/timeline")
def get_timeline(order_id: str) -> Response:
    order = _store.get_order(order_id)
    if order is None:
        return _not_found(order_id)
    return _json(200, timeline_view(order, _store.list_events(order_id), _clock.now()))


def _authorised(event: dict[str, Any]) -> bool:
    header = (event.get("headers") or {}).get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and bool(token) and constant_time_match([settings.ops_token()], token)


@lambda_entry(correlation_id=http_request_id)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not _authorised(event):
        return {"statusCode": 401, "headers": {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
                "body": '{"message":"a valid bearer token is required"}'}
    return app.resolve(event, context)
