"""Operations API: GET /orders/{order_id}, GET /orders?channel=&channel_order_id=, GET /orders/{order_id}/timeline."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from orderhub.clock import SystemClock
from orderhub.lifecycle.machine import hub_order_id
from orderhub.observability import http_request_id, lambda_entry
from orderhub.ops_api import bearer_only, json_response
from orderhub.orders_view import order_view, timeline_view
from orderhub.store.orders import DynamoOrderStore

app = APIGatewayHttpResolver()
_store = DynamoOrderStore()
_clock = SystemClock()


def _not_found(order_id: str) -> Response:
    return json_response(404, {"message": f"order {order_id} not found"})


@app.get("/orders/<order_id>")
def get_order(order_id: str) -> Response:
    order = _store.get_order(order_id)
    return json_response(200, order_view(order)) if order else _not_found(order_id)


@app.get("/orders")
def find_order() -> Response:
    channel = app.current_event.get_query_string_value("channel", "")
    channel_order_id = app.current_event.get_query_string_value("channel_order_id", "")
    if not channel or not channel_order_id:
        return json_response(400, {"message": "channel and channel_order_id are required"})
    order = _store.get_order(hub_order_id(channel, channel_order_id))
    return json_response(200, order_view(order)) if order else _not_found(f"{channel}/{channel_order_id}")


@app.get("/orders/<order_id>/timeline")
def get_timeline(order_id: str) -> Response:
    order = _store.get_order(order_id)
    if order is None:
        return _not_found(order_id)
    return json_response(200, timeline_view(order, _store.list_events(order_id), _clock.now()))


@lambda_entry(correlation_id=http_request_id)
@bearer_only
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
