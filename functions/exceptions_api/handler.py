"""Operations API for exceptions (EXC-2): GET /exceptions, GET /exceptions/{id},
POST /exceptions/{id}/acknowledge {"by"}, POST /exceptions/{id}/resolve {"by", "note"}.

Bearer token as the orders API. 400: a bad query or body; 404: no such exception; 409: the
exception is not in a state that allows the change (acknowledged twice, resolved twice).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from pydantic import ValidationError

from orderhub.clock import SystemClock
from orderhub.exceptions import handling
from orderhub.exceptions.model import ExceptionNotFound, WrongState
from orderhub.observability import http_request_id, lambda_entry, logger
from orderhub.ops_api import bearer_only, json_response
from orderhub.store.exceptions import DynamoExceptionStore

app = APIGatewayHttpResolver()
_store = DynamoExceptionStore()
_clock = SystemClock()


def _problem(status: int, message: str, **extra: Any) -> Response:
    return json_response(status, {"message": message, **extra})


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()]


@app.exception_handler(ExceptionNotFound)
def _not_found(exc: ExceptionNotFound) -> Response:
    return _problem(404, f"exception {exc} not found")


@app.exception_handler(WrongState)
def _wrong_state(exc: WrongState) -> Response:
    return _problem(409, str(exc), exception=handling.view(exc.record, _clock.now()).model_dump(mode="json"))


@app.get("/exceptions")
def list_exceptions() -> Response:
    query = dict(app.current_event.query_string_parameters or {})
    try:
        parsed = handling.ListQuery.model_validate(query)
    except ValidationError as exc:
        return _problem(400, "bad query", errors=_errors(exc))
    return json_response(200, handling.list_exceptions(_store, parsed, _clock.now()))


@app.get("/exceptions/<exception_id>")
def get_exception(exception_id: str) -> Response:
    return json_response(200, handling.view(handling.find(_store, exception_id), _clock.now()))


def _body(model: type[handling.AcknowledgeBody] | type[handling.ResolveBody]) -> Any:
    try:
        return model.model_validate_json(app.current_event.decoded_body or "")
    except ValidationError as exc:
        return _problem(400, "bad body", errors=_errors(exc))


@app.post("/exceptions/<exception_id>/acknowledge")
def acknowledge(exception_id: str) -> Response:
    body = _body(handling.AcknowledgeBody)
    if isinstance(body, Response):
        return body
    record = handling.acknowledge(_store, exception_id, body, _clock.now())
    logger.info("exception acknowledged", extra={"exception_id": exception_id, "by": body.by})
    return json_response(200, handling.view(record, _clock.now()))


@app.post("/exceptions/<exception_id>/resolve")
def resolve(exception_id: str) -> Response:
    body = _body(handling.ResolveBody)
    if isinstance(body, Response):
        return body
    record = handling.resolve(_store, exception_id, body, _clock.now())
    logger.info("exception resolved", extra={"exception_id": exception_id, "by": body.by})
    return json_response(200, handling.view(record, _clock.now()))


@lambda_entry(correlation_id=http_request_id)
@bearer_only
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
