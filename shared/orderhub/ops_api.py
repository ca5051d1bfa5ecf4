"""What every operations API route shares: the bearer token check, and JSON replies.

The token is the stage's ops token from Secrets Manager (cached like all configuration),
compared in constant time. Channels never call these routes; people and their tools do.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from aws_lambda_powertools.event_handler import Response

from orderhub import settings
from orderhub.channels.base import constant_time_match

UNAUTHORISED = {"statusCode": 401, "headers": {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
                "body": '{"message":"a valid bearer token is required"}'}


def authorised(event: dict[str, Any]) -> bool:
    header = (event.get("headers") or {}).get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and bool(token) and constant_time_match([settings.ops_token()], token)


def bearer_only(handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Refuse the request with 401 before any route runs, unless it carries the ops token."""

    @wraps(handler)
    def checked(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return handler(event, context) if authorised(event) else UNAUTHORISED

    return checked


def json_response(status: int, body: Any) -> Response:
    """A JSON reply: a dict/list, or a pydantic model dumped as it defines itself."""
    dump = getattr(body, "model_dump_json", None)
    return Response(status_code=status, content_type="application/json", body=dump() if dump else body)
