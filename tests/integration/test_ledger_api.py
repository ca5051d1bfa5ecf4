"""The ledger API and `orderhub ledger` on moto, through the real handlers: finance's commands queued to the
intake, booked by the status mapper in the payments table (DynamoLedger), and read back as an order's money,
a day's totals and its journal."""

from __future__ import annotations

import base64
import csv
import importlib
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.cli.main import main
from infra.demo.traffic import encode, mall_headers, mall_secret
from orderhub.clock import FixedClock
from orderhub.lifecycle.machine import hub_order_id
from orderhub.models.envelope import IntakeMessage
from orderhub.payments.ledger import business_date
from orderhub.store.ledger import DynamoLedger
from orderhub.store.orders import DynamoOrderStore


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The ledger API's clock, standing still until a test moves it (so a test's records keep their business
    day whenever it runs); module-level clients survive between invocations, as in Lambda, not between tests."""
    handler = importlib.import_module("functions.ledger_api.handler")

    def reset() -> None:
        handler._store._client = None
        handler._queue = None
        handler._ledger = None

    reset()
    fixed = FixedClock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(handler, "_clock", fixed)
    yield fixed
    reset()


def started() -> datetime:
    # The handlers read the real clock: the order is placed a few minutes before the test runs.
    return (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)


def place_order(hub, number: str, total: int = 129900) -> str:
    """A mall order created through the webhook and the status mapper; its hub id."""
    at = started()
    body = encode({"event_id": f"evt_{number}_01", "event_type": "order.created", "shop_id": "mini-01",
                   "event_time": at.isoformat(),
                   "order": {"order_no": number, "currency": "CNY", "total_amount": total,
                             "lines": [{"sku": "TEA-LJ-250", "quantity": 1, "unit_price": total}]}})
    reply = hub.invoke("webhook_ingest", hub.webhook_event(body, mall_headers(mall_secret(hub.config), body)))
    assert reply["statusCode"] == 200
    assert map_intake(hub) == ["mall"]
    return hub_order_id("mall", number)


def map_intake(hub) -> list[str]:
    """Run the status mapper over what the intake queue holds; the channels of the messages it mapped."""
    messages = []
    while batch := hub.receive("intake"):
        messages += batch
    if messages:
        assert hub.invoke("status_mapper", hub.sqs_event("intake", messages)) == {"batchItemFailures": []}
    return [json.loads(m["Body"])["channel"] for m in messages]


def api(hub, method: str, path: str, body: Any = None, token: str | None = "ops") -> tuple[int, dict, Any]:
    headers = {"authorization": f"Bearer {hub.config.ops_token if token == 'ops' else token}"} if token else {}
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
             "isBase64Encoded": False,
             "body": body if isinstance(body, str) or body is None else json.dumps(body, ensure_ascii=False),
             "requestContext": {"requestId": "r", "stage": "$default",
                                "http": {"method": method, "path": path, "sourceIp": "198.51.100.7"}}}
    reply = hub.invoke("ledger_api", event)
    raw = reply["body"]
    if reply.get("isBase64Encoded"):
        return reply["statusCode"], reply.get("headers", {}), base64.b64decode(raw)
    return reply["statusCode"], reply.get("headers", {}), json.loads(raw)


def journal_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_a_transfer_recorded_confirmed_and_reversed_is_booked_by_the_mapper_and_journalled(hub, clock):
    # Given a mall order of 1299.00 CNY, not paid
    order_id = place_order(hub, "LED001")
    # When finance records the bank transfer it saw
    status, _, receipt = api(hub, "POST", "/ledger/transfers", {
        "command": "record_transfer", "channel": "mall", "channel_order_id": "LED001",
        "reference": "CMB20261201000042", "amount": 129900, "reason": "对账单 12-01 第 42 行"})
    # Then it is queued, not written: 202 with the command id, the entry and the record it will book
    assert status == 202 and uuid.UUID(receipt["command_id"])
    assert (receipt["order_id"], receipt["entry_id"], receipt["state"]) == (
        order_id, "bank:payment:CMB20261201000042", "pending")
    assert api(hub, "GET", f"/ledger/orders/{order_id}")[2]["movements"] == []
    # And once the status mapper maps it, the ledger holds it, pending, with who recorded it and why
    assert map_intake(hub) == ["finance"]
    status, _, view = api(hub, "GET", f"/ledger/orders/{order_id}")
    assert status == 200 and view["money"]["pending_in"] == 129900 and view["money"]["paid"] == 0
    (movement,) = view["movements"]
    (pending,) = movement["records"]
    assert (movement["state"], movement["method"], pending["record_id"]) == (
        "pending", "bank_transfer", receipt["record_id"])
    assert (pending["source"], pending["actor"], pending["note"], pending["source_event_id"]) == (
        "finance", "ops-token", "对账单 12-01 第 42 行", receipt["command_id"])
    assert api(hub, "GET", "/ledger/orders/mall:LED001")[2] == view  # by channel and number, the same

    # When finance confirms it against the statement, a minute later
    clock.advance(60)
    status, _, confirmed = api(hub, "POST", "/ledger/transfers", {
        "command": "confirm", "order_id": order_id, "entry": "bank:payment:CMB20261201000042",
        "reason": "到账"})
    assert status == 202 and map_intake(hub) == ["finance"]
    # Then the money is paid, and the order is PAID by the ledger
    view = api(hub, "GET", f"/ledger/orders/{order_id}")[2]
    assert (view["movements"][0]["state"], view["money"]["paid"], view["money"]["pending_in"]) == (
        "confirmed", 129900, 0)
    order = DynamoOrderStore(hub.client("dynamodb"), hub.res.tables["orders"],
                             hub.res.tables["order-events"]).get_order(order_id)
    assert order is not None and (order.status, order.paid_amount) == ("PAID", 129900)
    # A second confirmation is refused, and nothing is queued
    status, _, problem = api(hub, "POST", "/ledger/transfers", {
        "command": "confirm", "order_id": order_id, "entry": "bank:payment:CMB20261201000042", "reason": "again"})
    assert status == 409 and "already confirmed" in problem["message"] and hub.receive("intake") == []

    # The day's totals and journal: a pending and a confirmed transfer, booked once, balanced
    day = business_date(clock.now())
    status, _, totals = api(hub, "GET", f"/ledger/days/{day}")
    assert status == 200 and [(t["method"], t["state"], t["count"], t["amount_text"]) for t in totals["totals"]] == [
        ("bank_transfer", "pending", 1, "1299.00"), ("bank_transfer", "confirmed", 1, "1299.00")]
    status, headers, data = api(hub, "GET", f"/ledger/days/{day}/journal")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert f"journal-{day}.csv" in headers["Content-Disposition"]
    rows = journal_rows(data)
    assert [(r["account"], r["debit"], r["credit"], r["voucher"]) for r in rows] == [
        ("1002 银行存款", "1299.00", "", confirmed["record_id"]),
        ("2203 预收账款", "", "1299.00", confirmed["record_id"])]
    assert {(r["order_id"], r["channel_order_id"], r["transaction_id"]) for r in rows} == {
        (order_id, "LED001", "CMB20261201000042")}

    # When it turns out to be another order's money, finance reverses it: a record of its own
    clock.advance(60)
    status, _, _ = api(hub, "POST", "/ledger/transfers", {
        "command": "reverse", "order_id": order_id, "entry": "bank:payment:CMB20261201000042",
        "reason": "属于另一订单"})
    assert status == 202 and map_intake(hub) == ["finance"]
    view = api(hub, "GET", f"/ledger/orders/{order_id}")[2]
    assert (view["movements"][0]["state"], len(view["movements"][0]["records"]), view["money"]["paid"]) == (
        "reversed", 3, 0)
    rows = journal_rows(api(hub, "GET", f"/ledger/days/{day}/journal")[2])
    # The original lines stay; a reversing pair follows with the sides swapped
    assert [(r["account"], r["debit"], r["credit"]) for r in rows] == [
        ("1002 银行存款", "1299.00", ""), ("2203 预收账款", "", "1299.00"),
        ("2203 预收账款", "1299.00", ""), ("1002 银行存款", "", "1299.00")]
    assert rows[2]["summary"].startswith("冲销 ")


@pytest.mark.parametrize(("body", "status", "says"), [
    ("not json", 400, "JSON"),
    ([1, 2], 400, "JSON object"),
    ({"command": "record_transfer", "channel": "mall", "channel_order_id": "LED002", "reference": "B1",
      "ammount": 100, "reason": "r"}, 400, "ammount"),
    ({"command": "record_transfer", "channel": "mall", "channel_order_id": "LED002", "reference": "B1",
      "amount": 100, "reason": "r", "actor": "me"}, 400, "set by the hub"),
    ({"command": "record_transfer", "channel": "mall", "channel_order_id": "NOPE", "reference": "B1",
      "amount": 100, "reason": "r"}, 404, "not found"),
    ({"command": "record_transfer", "channel": "mall", "channel_order_id": "LED002", "reference": "B1",
      "amount": 100, "currency": "USD", "reason": "r"}, 422, "CNY"),
    ({"command": "reverse", "channel": "mall", "channel_order_id": "LED002", "entry": "bank:payment:B9",
      "reason": "r"}, 404, "no entry"),
])
def test_a_command_the_ledger_cannot_take_is_refused_with_its_reason_and_nothing_is_queued(hub, body, status, says):
    place_order(hub, "LED002")
    got, _, problem = api(hub, "POST", "/ledger/transfers", body)
    assert (got, says in problem["message"]) == (status, True), problem
    assert hub.receive("intake") == []


def test_every_route_wants_the_ops_token_and_a_real_date(hub):
    for method, path in (("POST", "/ledger/transfers"), ("GET", "/ledger/orders/mall:X"),
                         ("GET", "/ledger/days/2026-12-01"), ("GET", "/ledger/days/2026-12-01/journal")):
        assert api(hub, method, path, {}, token=None)[0] == 401
        assert api(hub, method, path, {}, token="not-the-token")[0] == 401
    for bad in ("2026-02-30", "yesterday"):
        status, _, problem = api(hub, "GET", f"/ledger/days/{bad}")
        assert status == 400 and "not a date" in problem["message"]
    assert api(hub, "GET", "/ledger/orders/mall:NOPE")[0] == 404
    assert api(hub, "GET", "/ledger/orders/NOPE")[0] == 400
    # A day with nothing booked: empty totals, a journal of the header only
    assert api(hub, "GET", "/ledger/days/2001-01-01")[2] == {"date": "2001-01-01", "totals": [], "confirmed_net": []}
    assert journal_rows(api(hub, "GET", "/ledger/days/2001-01-01/journal")[2]) == []


def test_a_replayed_finance_command_is_read_from_its_body_and_changes_nothing(hub):
    # Given a recorded transfer, mapped
    order_id = place_order(hub, "LED003")
    api(hub, "POST", "/ledger/transfers", {"command": "record_transfer", "order_id": order_id, "reference": "B3",
                                           "amount": 500, "reason": "r"})
    map_intake(hub)
    store = DynamoOrderStore(hub.client("dynamodb"), hub.res.tables["orders"], hub.res.tables["order-events"])
    order = store.get_order(order_id)
    assert order is not None
    (entry,) = [e for e in store.list_events(order_id) if e.channel == "finance"]
    # When its log entry is re-fed as `orderhub replay` does (the mapper parses the kept body)
    message = IntakeMessage.wrap("finance", entry.received_at, "replay", "", dict(entry.raw_headers), entry.raw_body,
                                 replay_of=f"{order_id}#{entry.event_key}")
    hub.client("sqs").send_message(QueueUrl=hub.queue_url("intake"), MessageBody=message.model_dump_json())
    assert map_intake(hub) == ["finance"]
    # Then it is the same event: a duplicate in the log, the ledger and the order unchanged
    again = store.get_order(order_id)
    assert again is not None and again.version == order.version and again.ledger == order.ledger
    ledger = DynamoLedger(hub.client("dynamodb"), hub.res.tables["payments"])
    assert [r.record_id for r in ledger.records_of_order(order_id, list(order.ledger))] == list(order.ledger)


@pytest.fixture
def cli(hub, monkeypatch):
    """`orderhub ...` in this process: it resolves the hub's physical names from the committed configuration."""
    monkeypatch.setenv("ORDERHUB_CONFIG", str(Path(__file__).resolve().parents[2] / "config" / "local.toml"))
    assert hub.config.stage == "local"
    return main


def test_finance_records_confirms_and_exports_a_day_with_the_cli(hub, cli, capsys, tmp_path):
    # Given a mall order, and a transfer on the bank statement of 2026-11-30 (times given: the days are fixed)
    order_id = place_order(hub, "LED100")
    assert cli(["ledger", "record-transfer", "--order", "mall:LED100", "--amount", "1299.00", "--reference",
                "ICBC-77", "--reason", "statement 11-30 line 7", "--at", "2026-11-30T16:20:00", "--by", "wang"]) == 0
    out = capsys.readouterr().out
    assert "queued record_transfer" in out and "bank:payment:ICBC-77 -> pending" in out
    assert map_intake(hub) == ["finance"]
    # When it is shown: pending, recorded by the operator, why
    assert cli(["ledger", "show", "mall:LED100"]) == 0
    shown = capsys.readouterr().out
    assert "pending in 1299.00 CNY" in shown and "bank:payment:ICBC-77" in shown
    assert "cli:wang" in shown and "statement 11-30 line 7" in shown and "2026-11-30 16:20" in shown
    # And confirmed the next morning
    assert cli(["ledger", "confirm", "bank:payment:ICBC-77", "--order", order_id, "--reason", "on the statement",
                "--at", "2026-12-01T09:00:00+08:00"]) == 0
    assert map_intake(hub) == ["finance"]
    assert cli(["ledger", "show", order_id]) == 0
    assert "paid 1299.00 CNY" in capsys.readouterr().out
    # Then each day has its totals, and the day of the confirmation its journal
    assert cli(["ledger", "day", "2026-11-30"]) == 0
    day = capsys.readouterr().out
    assert "bank_transfer" in day and "pending" in day and "1299.00" in day and "confirmed" not in day
    assert cli(["ledger", "day", "2026-12-01"]) == 0
    assert "confirmed net 1299.00 CNY" in capsys.readouterr().out
    target = tmp_path / "journal.csv"
    assert cli(["ledger", "journal", "2026-12-01", "--out", str(target)]) == 0
    rows = journal_rows(target.read_bytes())
    assert [(r["date"], r["account"], r["debit"], r["credit"]) for r in rows] == [
        ("2026-12-01", "1002 银行存款", "1299.00", ""), ("2026-12-01", "2203 预收账款", "", "1299.00")]
    capsys.readouterr()
    assert cli(["ledger", "journal", "2026-11-30"]) == 0  # to stdout: the header only, nothing was confirmed
    assert journal_rows(capsys.readouterr().out.encode()) == []


def test_the_cli_refuses_what_the_ledger_cannot_take_and_queues_nothing(hub, cli, capsys):
    place_order(hub, "LED101")
    cases = [
        (["record-transfer", "--order", "mall:LED101", "--amount", "12.345", "--reference", "B", "--reason", "r"],
         2, "at most 2 decimals"),
        (["record-transfer", "--order", "mall:NOPE", "--amount", "1", "--reference", "B", "--reason", "r"],
         1, "refused (404)"),
        (["record-transfer", "--order", "mall:LED101", "--amount", "1", "--reference", "B", "--reason", "r",
          "--currency", "USD"], 1, "refused (422)"),
        (["confirm", "bank:payment:NOPE", "--order", "mall:LED101", "--reason", "r"], 1, "no entry"),
        (["show", "LED101"], 2, "channel:number"),
        (["day", "2026-13-01"], 2, "not a date"),
    ]
    for args, code, says in cases:
        assert cli(["ledger", *args]) == code, args
        assert says in capsys.readouterr().err
    assert hub.receive("intake") == []
