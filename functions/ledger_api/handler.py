"""Ledger API for finance (PAY-2): POST /ledger/transfers, GET /ledger/orders/{order_id},
GET /ledger/days/{date}, GET /ledger/days/{date}/journal.

- `POST /ledger/transfers`: a finance command (`orderhub.payments.commands.CommandRequest`: record a bank
  transfer, confirm or reverse an entry) without its id and actor, which the hub sets: the command id is a
  fresh UUID, the actor "ops-token" (the bearer token is shared: the API does not know the person yet). The
  command is checked against the order's ledger and queued to the intake like a channel's event (ING-9):
  202 with the command id, the entry and the record it will book. Nothing is written here.
- `GET /ledger/orders/{order_id}` (a hub id, or `channel:number`): the order's movements with their states
  and records, and its money (paid, refunded, net, pending in and out).
- `GET /ledger/days/{date}`: the business day's totals by currency, method class, direction and state.
- `GET /ledger/days/{date}/journal`: the day's journal lines as CSV (`payments.journal`), UTF-8 with BOM.

Bearer ops token as the other operations APIs. 400: a body or date that cannot be read; 404: no such order
(or entry); 409: the ledger already says otherwise; 422: a command contradicting its order or entry.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from orderhub import settings
from orderhub.channels.base import ChannelRejection, loads_decimal
from orderhub.clock import SystemClock
from orderhub.intake import IntakeQueue
from orderhub.observability import http_request_id, lambda_entry, logger
from orderhub.ops_api import bearer_only, json_response
from orderhub.payments import commands, journal
from orderhub.store.orders import DynamoOrderStore

app = APIGatewayHttpResolver()
_store = DynamoOrderStore()
_clock = SystemClock()
_queue: IntakeQueue | None = None
_ledger: journal.RecordReader | None = None

# The API knows no person yet (one shared bearer token): every API command is the shared token's.
API_ACTOR = "ops-token"
MAX_BODY_BYTES = 16 * 1024


def _intake_queue() -> IntakeQueue:
    global _queue
    if _queue is None:
        _queue = IntakeQueue(settings.env("INTAKE_QUEUE_URL"))
    return _queue


def _payments() -> journal.RecordReader:
    global _ledger
    if _ledger is None:
        from orderhub.store.ledger import DynamoLedger  # the payments table (PAYMENTS_TABLE)

        _ledger = DynamoLedger()
    return _ledger


def _problem(status: int, message: str) -> Response:
    return json_response(status, {"message": message})


@app.exception_handler(commands.CommandRefused)
def _refused(exc: commands.CommandRefused) -> Response:
    return _problem(exc.status, exc.reason)


def _day(text: str) -> str:
    try:
        return journal.parse_day(text)
    except ValueError as exc:
        raise commands.CommandRefused(400, str(exc)) from None


@app.post("/ledger/transfers")
def post_command() -> Response:
    raw = app.current_event.decoded_body or ""
    if len(raw.encode()) > MAX_BODY_BYTES:
        return _problem(413, f"a command is at most {MAX_BODY_BYTES} bytes")
    try:
        payload = loads_decimal(raw)
    except ChannelRejection as rejection:
        return _problem(400, rejection.reason)
    now = _clock.now()
    prepared = commands.prepare(commands.read_request(payload), _store, now, command_id=str(uuid.uuid4()),
                                actor=API_ACTOR)
    source_ip = app.current_event.request_context.http.source_ip or ""
    commands.submit(prepared, _intake_queue(), now, source_ip)
    receipt = prepared.receipt()
    # Ids and states only: the reason is finance's free text, kept with the record, not in logs.
    logger.info("finance command queued", extra={k: receipt[k] for k in ("command_id", "command", "order_id",
                                                                         "entry_id", "state")})
    return json_response(202, receipt)


@app.get("/ledger/orders/<order_id>")
def get_order_ledger(order_id: str) -> Response:
    order = commands.find_order(commands.order_ref(order_id), _store)
    return json_response(200, journal.order_view(order, journal.order_records(_payments(), order)))


@app.get("/ledger/days/<day>")
def get_day(day: str) -> Response:
    day = _day(day)
    return json_response(200, journal.day_view(day, journal.day_records(_payments(), _store, day)))


@app.get("/ledger/days/<day>/journal")
def get_journal(day: str) -> Response:
    day = _day(day)
    lines = journal.journal_lines(journal.day_records(_payments(), _store, day), day, journal.accounts_from_env())
    return Response(status_code=200, content_type="text/csv; charset=utf-8", body=journal.journal_csv(lines),
                    headers={"Content-Disposition": f'attachment; filename="journal-{day}.csv"'})


@lambda_entry(correlation_id=http_request_id)
@bearer_only
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
