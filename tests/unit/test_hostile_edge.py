"""Permanently bad requests are a 4xx with a reason, and a re-used event id is reported, not ignored.

Each test names the class of input it covers; the hostile tier (tests/hostile) covers every push
channel's payload shape at once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from unit.mall_events import created, paid
from unit.moto_tables import moto_order_store

from orderhub.channels.base import ChannelSettings, InboundRequest
from orderhub.channels.mall import sign
from orderhub.clock import FixedClock
from orderhub.intake import accept_webhook
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.store.orders import DynamoOrderStore, InMemoryOrderStore

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
SECRET = "secret-1"


class Queue:
    def __init__(self) -> None:
        self.sent: list[IntakeMessage] = []

    def send(self, message: IntakeMessage) -> None:
        self.sent.append(message)


def post(channel: str, body: bytes, timestamp: str | None = None):
    ts = str(int(NOW.timestamp())) if timestamp is None else timestamp
    prefix = "x-mall" if channel == "mall" else "x-wms"
    headers = {f"{prefix}-timestamp": ts, f"{prefix}-signature": sign(SECRET, ts, body)}
    queue = Queue()
    result = accept_webhook(InboundRequest(channel, headers, body, "198.51.100.7"), "req-1",
                            lambda _: ChannelSettings(secrets=[SECRET]), queue, FixedClock(NOW))
    return result, queue.sent


# -- timestamps made of digits that are not ASCII ---------------------------------------------------------

NOT_ASCII_DIGITS = ["\u00b9\u2077\u2079\u2075\u00b9\u00b3\u00b2\u2078\u2070\u2070",  # superscripts: isdigit, not int
                    "\u0661\u0667\u0669\u0665\u0661\u0663\u0662\u0668\u0660\u0660",  # Arabic-Indic: int() reads them
                    "\uff11\uff17\uff19\uff15\uff11\uff13\uff12\uff18\uff10\uff10",  # fullwidth
                    "\U0001d7cf\U0001d7d5", "1795132800\u0301", " 1795132800", "+1795132800", "-1", "1e9", ""]


@pytest.mark.parametrize("channel", ["mall", "wms"])
@pytest.mark.parametrize("timestamp", NOT_ASCII_DIGITS)
def test_a_timestamp_not_in_ascii_digits_is_a_401_before_anything_else(channel, timestamp):
    result, sent = post(channel, json.dumps(created()).encode(), timestamp)
    assert result.reply.status_code == 401 and sent == []
    assert "X-" in result.rejection


@settings(max_examples=300, derandomize=True)
@given(st.text(max_size=14) | st.from_regex(r"\A[0-9]{1,14}\Z"))
def test_any_timestamp_header_is_answered_401_or_accepted_never_an_error(timestamp):
    result, sent = post("mall", json.dumps(created()).encode(), timestamp)
    assert result.reply.status_code in (200, 401)
    assert (result.reply.status_code == 200) == (timestamp.isascii() and timestamp.isdigit()
                                                 and -300 <= int(timestamp) - int(NOW.timestamp()) <= 60)


# -- channel times outside the window around the hub clock ----------------------------------------------

@pytest.mark.parametrize("event_time, status", [
    ("2286-11-20T17:46:40+00:00", 400),  # would hold the order against every later real event
    ((NOW + timedelta(days=1, seconds=1)).isoformat(), 400),
    ("1999-12-31T23:59:59+00:00", 400),
    ("1970-01-01T00:00:00+00:00", 400),
    ((NOW + timedelta(hours=23)).isoformat(), 200),  # a platform clock off by hours still gets in
    ("2001-01-01T00:00:00+08:00", 200),  # an old time is what imports and late pushes carry
])
def test_an_event_time_outside_the_window_is_a_400_with_the_reason(event_time, status):
    body = json.dumps({**created(), "event_time": event_time}).encode()
    result, sent = post("mall", body)
    assert result.reply.status_code == status
    assert (sent == []) == (status == 400)
    if status == 400:
        assert "time" in json.loads(result.reply.body)["message"]


# -- booleans are not amounts or quantities -----------------------------------------------------------------

@pytest.mark.parametrize("where", ["total_amount", "unit_price", "quantity"])
def test_true_is_not_an_amount_or_a_quantity(where):
    event = created()
    if where == "total_amount":
        event["order"]["total_amount"] = True
    else:
        event["order"]["lines"][0][where] = True
    result, sent = post("mall", json.dumps(event).encode())
    assert result.reply.status_code == 400 and sent == []
    assert where in json.loads(result.reply.body)["message"]


def test_a_wms_package_line_of_true_items_is_a_400():
    body = {"event_id": "wms-HZ01-1", "event_type": "package.outbound", "warehouse": "HZ-01",
            "order_id": "oh_x", "package": {"package_id": "PKG-1", "scanned_at": NOW.isoformat(), "carrier": "SF",
                                            "tracking_no": "SF1", "lines": [{"sku": "A", "quantity": True}]}}
    result, sent = post("wms", json.dumps(body).encode())
    assert result.reply.status_code == 400 and sent == [] and "quantity" in result.rejection


# -- an event id re-sent with other facts ------------------------------------------------------------------

def message(raw: dict, replay_of: str | None = None) -> IntakeMessage:
    return IntakeMessage.wrap("mall", "2026-11-22T03:00:00.000+00:00", "req-1", "198.51.100.7", {},
                              json.dumps(raw).encode(), replay_of=replay_of)


def moto_store() -> DynamoOrderStore:
    return moto_order_store(boto3.client("dynamodb", region_name="ap-southeast-1"))


@pytest.fixture(params=["in-memory", "moto"])
def store(request):
    if request.param == "in-memory":
        yield InMemoryOrderStore()
    else:
        with mock_aws():
            yield moto_store()


def test_an_event_id_resent_with_other_facts_is_a_conflict_and_the_first_facts_stay(store):
    clock = FixedClock(NOW)
    map_message(message(created()), store, clock)
    (first,) = map_message(message(paid(amount=25800)), store, clock)
    (again,) = map_message(message(paid(amount=25800)), store, clock)
    (changed,) = map_message(message(paid(amount=1)), store, clock)
    assert (first.outcome, again.outcome, changed.outcome) == ("applied", "duplicate", "conflict")
    order = store.get_order(first.order_id)
    assert order.payment_claim == 25800 and order.version == 2
    assert [e.outcome for e in store.list_events(first.order_id)] == ["applied", "applied"]


def test_a_replay_of_a_kept_body_applies_as_before_even_if_its_facts_read_differently(store):
    clock = FixedClock(NOW)
    map_message(message(created()), store, clock)
    map_message(message(paid(amount=25800)), store, clock)
    (replayed,) = map_message(message(paid(amount=1), replay_of="log-entry"), store, clock)
    assert replayed.outcome != "conflict"


def test_telling_a_conflict_from_a_redelivery_costs_no_read():
    with mock_aws():
        store = moto_store()
        clock = FixedClock(NOW)
        map_message(message(created()), store, clock)
        map_message(message(paid()), store, clock)
        calls: list[str] = []
        store.client.meta.events.register("before-call.dynamodb.*",
                                          lambda model, **_: calls.append(model.name))
        (outcome,) = map_message(message(paid(amount=1)), store, clock)
    assert outcome.outcome == "conflict"
    assert calls == ["GetItem", "PutItem"]  # the order read every event makes, then the conditional log put


# -- WooCommerce unit prices below the cent ---------------------------------------------------------------

def _woo_order(price, quantity: int, total: str) -> tuple[bytes, dict[str, str]]:
    from infra.demo.traffic import load_channel_stories

    request = next(r for s in load_channel_stories("woocommerce") for r in s.requests
                   if json.loads(r.payload).get("line_items"))
    order = json.loads(request.payload)
    order["line_items"] = [{**order["line_items"][0], "price": price, "quantity": quantity, "total": total}]
    return json.dumps(order).encode(), request.headers


@pytest.mark.parametrize("price, quantity, total, unit, flagged", [
    (3.333333, 3, "10.00", 333, True),   # WooCommerce's price is the line total over the quantity
    (3.335, 1, "3.34", 334, True),       # rounded half up, and said so
    (12.5, 2, "25.00", 1250, False),
    ("7.10", 1, "7.10", 710, False),
])
def test_a_woocommerce_unit_price_below_the_cent_is_rounded_and_recorded_as_a_gap(price, quantity, total, unit,
                                                                                   flagged):
    from orderhub.channels.woocommerce import CHANNEL, SUB_MINOR_PRICE

    body, headers = _woo_order(price, quantity, total)
    (event,) = CHANNEL.parse(body, headers)
    assert event.details.lines[0].unit_price == unit
    assert (SUB_MINOR_PRICE in event.gaps) == flagged


# -- imported rows carry old times legitimately, but not before the window -------------------------------

@pytest.mark.parametrize("time, refused", [("1999-12-31 23:00:00", True), ("0001-01-01 00:00:00", True),
                                           ("2003-05-01 10:00:00", False)])
def test_an_imported_row_dated_before_2000_is_refused_with_its_row(time, refused):
    from unit.test_import import csv_of, prepare, row

    report = prepare(csv_of(row(time=time))).report
    assert bool(report.errors) == refused, report.render()
    if refused:
        assert report.errors[0].row == 2 and "before 2000-01-01" in report.render()
