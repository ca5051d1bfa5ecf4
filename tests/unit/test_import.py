"""ING-6 file import, ING-8 replay and ING-7 drift/gap counting, in memory.

The CSV samples under events/import/ are the fixtures: a store's orders, an Excel export with
BOM and an extra column, and a file with errors on several rows.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.cli.replay import plan_replay, replay_of, send_plan
from infra.cli.reports import drift_report, gaps_report, rule_covering
from orderhub.channels import get_channel
from orderhub.channels.base import FieldRules, InboundRequest, Malformed, Unauthorized
from orderhub.channels.file_import import CHANNEL, COLUMNS, STATUS_MAP, client_request, message_body
from orderhub.clock import FixedClock
from orderhub.imports import ENQUEUED, INCOMPLETE, REJECTED, prepare_import, run_import
from orderhub.lifecycle.machine import HUB_BOOKKEEPING_FIELDS, apply_event, hub_order_id
from orderhub.lifecycle.statuses import STATUS_RANK, EventKind
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.models.order import OrderEvent
from orderhub.store.health import InMemoryChannelHealth
from orderhub.store.orders import InMemoryOrderStore

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "import"
STORE_FILE = "store-sh-01_2026-11-19.csv"
EXCEL_FILE = "mall-offline_2026-11-20_excel.csv"
ERRORS_FILE = "store-sh-01_2026-11-20_with-errors.csv"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TZ = "Asia/Shanghai"
HEADER = ",".join(COLUMNS)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def prepare(data: bytes, channel: str = "store-sh-01", shop: str = "", name: str = "f.csv"):
    return prepare_import(data, file_name=name, channel=channel, shop_id=shop, business_tz=TZ, now=NOW)


def csv_of(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def row(order="SO-1", type_="created", time="2026-11-19 10:00:00", shop="", currency="CNY", total="10.00", sku="A",
        name="商品", qty="1", price="10.00", payment="", carrier="", tracking="", refund="", refund_amount="") -> str:
    return ",".join([order, type_, time, shop, currency, total, sku, name, qty, price, payment, carrier, tracking,
                     refund, refund_amount])


def first_row(message: IntakeMessage) -> int:
    return json.loads(message.body)["rows"][0]["row"]


class FakeSender:
    """SendMessageBatch as a list; `fail` maps a call number (0-based) to the entry indexes that fail in it,
    `broken` lists first rows whose messages always fail."""

    def __init__(self, fail: dict[int, set[int]] | None = None, broken: set[int] = frozenset(),
                 retry: bool = True) -> None:
        self.sent: list[IntakeMessage] = []
        self.calls = 0
        self.fail = fail or {}
        self.broken = broken
        self.retry = retry

    def send_batch(self, messages):
        failing = self.fail.get(self.calls, set()) | {i for i, m in enumerate(messages) if first_row(m) in self.broken}
        self.calls += 1
        self.sent += [m for i, m in enumerate(messages) if i not in failing]
        return {i: ("ServiceUnavailable: try again", self.retry) for i in failing if i < len(messages)}


def events_of(data: bytes, channel: str = "store-sh-01") -> list[OrderEvent]:
    prepared = prepare(data, channel)
    assert not prepared.report.errors, prepared.report.render()
    return [e for _, m in prepared.messages for e in CHANNEL.parse(m.body)]


# --- the import channel module ----------------------------------------------------------------


def test_the_import_channel_is_registered_and_has_no_webhook():
    assert get_channel("import") is CHANNEL and CHANNEL.push is False
    with pytest.raises(Unauthorized):
        CHANNEL.authenticate(InboundRequest("import", {}, b"{}", "198.51.100.1"), None, NOW)  # type: ignore[arg-type]


def test_rows_become_events_of_the_target_channel_reported_by_import():
    events = events_of(sample(STORE_FILE))
    sha = prepare(sample(STORE_FILE)).report.sha256
    first = events[0]
    assert (first.channel, first.source, first.reporter) == ("store-sh-01", "import", "import")
    assert first.channel_order_id == "SH01-20261118-0001" and first.shop_id == "SH01"
    assert first.event_id == f"{sha[:12]}:2"  # the header is row 1
    # A two-line order is one created event carrying both lines; money in fen.
    assert first.kinds == (EventKind.CREATED,) and first.details is not None
    assert [(line.sku, line.quantity, line.unit_price) for line in first.details.lines] == \
        [("CF-500", 2, 8900), ("FP-100", 1, 1990)]
    assert first.details.total_amount == 19790 and first.details.currency == "CNY"
    # 18 rows, three multi-line created orders (2 + 2 + 2 lines): 15 events.
    assert len(events) == 15


def test_times_without_offset_are_business_time_and_iso_offsets_are_kept():
    events = events_of(sample(STORE_FILE))
    created = events[0]
    assert created.event_time == datetime(2026, 11, 18, 2, 2, 11, tzinfo=UTC)  # 10:02:11 in Shanghai
    paid_z = next(e for e in events if e.event_id.endswith(":17"))
    assert paid_z.event_time == datetime(2026, 11, 19, 3, 1, 30, tzinfo=UTC)


def test_each_event_type_carries_its_facts():
    by_code = defaultdict(list)
    for event in events_of(sample(STORE_FILE)):
        by_code[event.channel_code].append(event)
    paid = by_code["paid"][0]
    assert paid.payment is not None and (paid.payment.transaction_id, paid.payment.amount) == ("WX4200001234567", 19790)
    shipped = by_code["shipped"][0]
    assert shipped.kinds == (EventKind.SHIP_REQUESTED,)  # never OUTBOUND: only the warehouse ships
    assert shipped.shipment is not None and shipped.shipment.tracking_no == "SF1402837465012"
    refund = by_code["refunded"][0]
    assert refund.kinds == () and refund.aftersales[0].case_id == "RF-SH01-0002"
    assert refund.aftersales[0].amount == 26800 and refund.aftersales[0].state == "REFUNDED"


@pytest.mark.parametrize("code", sorted(STATUS_MAP))
def test_every_event_type_maps_to_its_kinds(code):
    extra = {"paid": {"total_amount": "1.00"}, "shipped": {"carrier": "SF", "tracking_no": "SF1"},
             "refunded": {"refund_id": "R1", "refund_amount": "1.00"},
             "created": {"total_amount": "1.00", "sku": "A", "quantity": "1", "unit_price": "1.00"}}.get(code, {})
    body = message_body("store-sh-01", "", "f.csv", "a" * 64, TZ, [(2, {
        "channel_order_id": "SO-1", "event_type": code, "event_time": "2026-11-19 10:00:00", **extra})])
    (event,) = CHANNEL.parse(body)
    assert event.kinds == STATUS_MAP[code] and event.gaps == ()


def test_an_unknown_event_type_is_a_gap_not_a_guess():
    body = message_body("store-sh-01", "", "f.csv", "a" * 64, TZ, [(2, {
        "channel_order_id": "SO-1", "event_type": "invoiced", "event_time": "2026-11-19 10:00:00"})])
    (event,) = CHANNEL.parse(body)
    assert event.kinds == () and event.gaps == ("event_type=invoiced",)


def test_a_column_outside_the_contract_is_drift_carried_without_its_value():
    prepared = prepare(sample(EXCEL_FILE), channel="mall")
    assert prepared.report.warnings and "备注" in prepared.report.warnings[0]
    body = prepared.messages[0][1].body
    assert "门店自提" not in body.decode()  # what the hub does not understand is not kept
    (event,) = CHANNEL.parse(body)
    assert event.drift == ("rows[].values.备注",)
    # A field rule answers it: dropped before parsing, or ignored; either way no longer drift.
    for rules in (FieldRules(drop=("rows[].values.备注",)), FieldRules(ignore=("rows[].values.备注",))):
        (event,) = CHANNEL.parse(body, rules=rules)
        assert event.drift == ()


@pytest.mark.parametrize("body, reason", [
    (b"not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (json.dumps({"format": "other"}).encode(), "format"),
    (message_body("import", "", "f.csv", "a" * 64, TZ, [(2, {"channel_order_id": "X"})]), "not 'import'"),
    (message_body("shop", "", "f.csv", "xyz", TZ, [(2, {"channel_order_id": "X"})]), "sha256"),
    (message_body("shop", "", "f.csv", "a" * 64, "Mars/Base", [(2, {"channel_order_id": "X"})]), "time zone"),
    (message_body("shop", "", "f.csv", "a" * 64, TZ, [(2, {"channel_order_id": "X", "event_type": "paid",
                                                          "event_time": "2026-11-19 10:00"})]), "total_amount"),
    (message_body("shop", "", "f.csv", "a" * 64, TZ, [
        (2, {"channel_order_id": "X", "event_type": "paid", "event_time": "2026-11-19 10:00", "total_amount": "1"}),
        (3, {"channel_order_id": "X", "event_type": "paid", "event_time": "2026-11-19 10:00", "total_amount": "1"}),
    ]), "several rows"),
])
def test_malformed_bodies_are_refused_with_a_reason(body, reason):
    with pytest.raises(Malformed) as refused:
        CHANNEL.parse(body)
    assert reason in refused.value.reason


def test_the_client_side_sends_the_body_as_built():
    body = message_body("shop", "", "f.csv", "a" * 64, TZ, [(2, {"channel_order_id": "X"})])
    headers, sent = client_request(body, {"X-Source": "cli"}, "", "", NOW)
    assert sent == body and headers["x-source"] == "cli"


# --- validation: all rows or none -------------------------------------------------------------


def test_a_file_with_errors_on_several_rows_enqueues_nothing_and_reports_every_error():
    sender = FakeSender()
    report = run_import(sample(ERRORS_FILE), file_name=ERRORS_FILE, channel="store-sh-01", shop_id="",
                        business_tz=TZ, now=NOW, sender=sender)
    assert report.status == REJECTED and sender.sent == [] and sender.calls == 0
    assert [(e.row, e.column) for e in report.errors] == [
        (3, "event_time"),  # month 13
        (4, "event_type"),  # "shipping"
        (5, "total_amount"),  # "1,299.00"
        (6, "channel_order_id"),  # Excel's 2.02611E+17
        (7, "quantity"),  # 0
        (8, "total_amount"),  # the second line of an order disagrees with the first
        (9, "tracking_no"),  # shipped without a waybill
        (10, "event_time"),  # a year ahead
        (10, "refund_amount"),  # refunded without an amount
    ]
    assert "REJECTED, nothing enqueued" in report.render() and "row 6, channel_order_id" in report.render()
    assert report.as_dict()["errors"][0] == {"row": 3, "column": "event_time",
                                             "error": "'2026-13-20 10:01:00' is not a valid time "
                                                      "(month must be in 1..12)"}


@pytest.mark.parametrize("data, row, text", [
    (b"", 1, "empty"),
    (HEADER.encode() + b"\n", 2, "no rows"),
    (b"channel_order_id;event_type;event_time\nA;paid;x\n", 1, "comma separated"),
    (b"channel_order_id,event_time\nA,2026-11-19 10:00\n", 1, "required column"),
    (b"channel_order_id,event_type,event_time,event_type\n", 1, "twice"),
    (HEADER.encode() + b"\n" + row(name="goods").encode("gbk") + "\n".encode("gbk") +
     row(name="咖啡").encode("gbk"), 3, "not UTF-8"),
    (csv_of(row() + ",extra"), 2, "a value with a comma must be quoted"),
    (csv_of(row(time="2026-11-19")), 2, "neither ISO 8601"),
    (csv_of(row(price="¥10")), 2, "not an amount"),
    (csv_of(row(total="10.005")), 2, "not an amount"),
    (csv_of(row(currency="JPY")), 2, "not in hundredths"),
    (csv_of(row(type_="shipped", carrier="SF")), 2, "required for shipped rows"),
])
def test_what_is_wrong_with_a_file_is_said_with_its_row(data, row, text):
    report = prepare(data).report
    assert report.errors and report.errors[0].row == row, report.render()
    assert text in report.render()


def test_an_excel_utf8_export_with_bom_slashed_dates_and_quoted_ids_is_accepted():
    events = events_of(sample(EXCEL_FILE), channel="mall")
    assert events[0].channel_order_id == "00123456789012345678"  # leading zeros kept
    assert events[0].event_time == datetime(2026, 11, 20, 1, 5, tzinfo=UTC)  # 2026/11/20 9:05 in Shanghai


def test_blank_lines_still_count_in_row_numbers_as_in_a_spreadsheet():
    report = prepare(csv_of(row(), "", row(order="SO-2", time="bad"))).report
    assert [(e.row, e.column) for e in report.errors] == [(4, "event_time")]


def test_the_default_shop_fills_rows_without_one_and_columns_of_other_types_are_ignored():
    data = csv_of(row(shop=""), row(type_="delivered", total="not money", sku="", qty="", price=""))
    events = [e for _, m in prepare(data, shop="SH09").messages for e in CHANNEL.parse(m.body)]
    assert [e.shop_id for e in events] == ["SH09", "SH09"]
    assert events[1].kinds == (EventKind.DELIVERED,)


def test_an_order_too_large_for_one_message_is_refused():
    lines = [row(sku=f"SKU-{i}", name="很长的商品名称" * 20, total="10.00") for i in range(500)]
    report = prepare(csv_of(*lines)).report
    assert report.errors and "too large" in report.errors[0].message


# --- sending ----------------------------------------------------------------------------------


def test_a_valid_file_is_sent_in_batches_of_ten_as_import_messages():
    sender = FakeSender()
    report = run_import(sample(STORE_FILE), file_name=STORE_FILE, channel="store-sh-01", shop_id="",
                        business_tz=TZ, now=NOW, sender=sender)
    assert report.status == ENQUEUED and report.enqueued == report.events == 15 and report.rows == 18
    assert sender.calls == 2 and len(sender.sent) == 15
    assert {m.channel for m in sender.sent} == {"import"} and all(m.replay_of is None for m in sender.sent)
    assert json.loads(sender.sent[0].body)["file"] == STORE_FILE


def test_a_failed_entry_is_retried_alone():
    sender = FakeSender(fail={0: {3, 7}})
    report = run_import(sample(STORE_FILE), file_name=STORE_FILE, channel="store-sh-01", shop_id="",
                        business_tz=TZ, now=NOW, sender=sender, sleep=lambda _: None)
    assert report.status == ENQUEUED and report.enqueued == 15
    assert len(sender.sent) == 15 and len({m.body for m in sender.sent}) == 15  # no duplicates


def test_sending_that_keeps_failing_midway_says_how_far_it_got():
    rows = [first for first, _ in prepare(sample(STORE_FILE)).messages]
    sender = FakeSender(broken={rows[12]})  # one message of the second batch never goes
    report = run_import(sample(STORE_FILE), file_name=STORE_FILE, channel="store-sh-01", shop_id="",
                        business_tz=TZ, now=NOW, sender=sender, sleep=lambda _: None)
    assert report.status == INCOMPLETE and report.enqueued == 14 and report.first_unsent_row == rows[12]
    assert sender.calls == 1 + 5  # the first batch, then the second one and its 4 retries
    assert "ServiceUnavailable" in report.failure and "safe" in report.render()


# --- at the mapper ----------------------------------------------------------------------------


def map_all(messages, store, health=None):
    return [o for m in messages for o in map_message(m, store, FixedClock(NOW), health=health)]


def test_imported_orders_land_and_a_reimport_is_a_no_op():
    store = InMemoryOrderStore()
    first = FakeSender()
    run_import(sample(STORE_FILE), file_name=STORE_FILE, channel="store-sh-01", shop_id="", business_tz=TZ,
               now=NOW, sender=first)
    outcomes = map_all(first.sent, store)
    assert {o.outcome for o in outcomes} <= {"applied", "no_change", "status_held"}
    order = store.get_order(hub_order_id("store-sh-01", "SH01-20261118-0001"))
    assert order is not None and order.status == "COMPLETED" and order.total_amount == 19790
    assert order.channel == "store-sh-01"
    before = dict(store.orders)
    # The same file again (an hour later, through the other path): every event is a duplicate.
    again = FakeSender()
    run_import(sample(STORE_FILE), file_name=STORE_FILE, channel="store-sh-01", shop_id="", business_tz=TZ,
               now=NOW + timedelta(hours=1), sender=again)
    assert {o.outcome for o in map_all(again.sent, store)} == {"duplicate"}
    assert store.orders == before


STORY_EXPECT = {
    "SH01-20261118-0001": ("COMPLETED", "PAID"),
    "SH01-20261118-0002": ("CLOSED", "REFUNDED"),
    "SH01-20261119-0003": ("CANCELLED", "UNPAID"),
    "SH01-20261119-0004": ("PAID", "PARTIALLY_REFUNDED"),  # shipped on the channel only: ST-4
}


def test_each_sample_order_ends_where_its_story_says():
    store = InMemoryOrderStore()
    sender = FakeSender()
    run_import(sample(STORE_FILE), file_name=STORE_FILE, channel="store-sh-01", shop_id="", business_tz=TZ,
               now=NOW, sender=sender)
    map_all(sender.sent, store)
    for order_no, (status, payment) in STORY_EXPECT.items():
        order = store.get_order(hub_order_id("store-sh-01", order_no))
        assert order is not None and (order.status, order.payment_status) == (status, payment), order_no


def test_an_imported_order_keeps_its_shop():
    store = InMemoryOrderStore()
    sender = FakeSender()
    run_import(sample(STORE_FILE), file_name=STORE_FILE, channel="store-sh-01", shop_id="", business_tz=TZ,
               now=NOW, sender=sender)
    map_all(sender.sent, store)
    assert store.get_order(hub_order_id("store-sh-01", "SH01-20261118-0001")).shop_id == "SH01"


def _fold(events):
    order, statuses = None, []
    for event in events:
        order, _ = apply_event(order, event)
        statuses.append(order.status)
    return order, statuses


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_arrival_order_with_duplicates_gives_the_same_order(data):
    by_order = defaultdict(list)
    for event in events_of(sample(STORE_FILE)):
        by_order[event.channel_order_id].append(event)
    order_no = data.draw(st.sampled_from(sorted(by_order)))
    events = by_order[order_no]
    arrival = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=3))))
    expected, _ = _fold(sorted(events, key=lambda e: (e.event_time, e.event_id)))
    got, statuses = _fold(arrival)
    assert got.model_dump(exclude=HUB_BOOKKEEPING_FIELDS) == expected.model_dump(exclude=HUB_BOOKKEEPING_FIELDS)
    assert all(STATUS_RANK[a] <= STATUS_RANK[b] for a, b in zip(statuses, statuses[1:], strict=False))


# --- drift and gap counters -------------------------------------------------------------------


def test_drift_and_gaps_are_counted_per_channel_with_first_and_last_seen():
    health = InMemoryChannelHealth()
    health.record("douyin", ["data.new_field"], ["order_status=999"], "e1", "2026-11-19T01:00:00.000+00:00")
    health.record("douyin", ["data.new_field", "data.new_field"], [], "e2", "2026-11-19T02:00:00.000+00:00")
    health.record("youzan", [], ["status=X"], "e3", "2026-11-19T03:00:00.000+00:00")
    (drift,) = health.entries("douyin", kind="drift")
    assert (drift.key, drift.count, drift.first_seen, drift.last_seen, drift.last_event_id) == \
        ("data.new_field", 2, "2026-11-19T01:00:00.000+00:00", "2026-11-19T02:00:00.000+00:00", "e2")
    assert [(e.channel, e.key, e.count) for e in health.entries(kind="gap")] == \
        [("douyin", "order_status=999", 1), ("youzan", "status=X", 1)]


def test_the_mapper_counts_an_imported_column_as_drift_of_the_import_channel():
    health = InMemoryChannelHealth()
    sender = FakeSender()
    run_import(sample(EXCEL_FILE), file_name=EXCEL_FILE, channel="mall", shop_id="", business_tz=TZ, now=NOW,
               sender=sender)
    map_all(sender.sent, InMemoryOrderStore(), health)
    (entry,) = health.entries("import")
    assert (entry.kind, entry.key, entry.count) == ("drift", "rows[].values.备注", 5)


def test_reports_show_counts_examples_and_the_rule_covering_drift_now():
    health = InMemoryChannelHealth()
    health.record("import", ["rows[].values.备注", "rows[].values.memo.x"], ["event_type=invoiced"], "abc:2",
                  "2026-11-19T01:00:00.000+00:00")
    rules = FieldRules(ignore=("rows[].values.备注",), rename={"rows[].values.memo": "rows[].values.name"})
    text = drift_report(health.entries(), lambda channel: rules)
    assert "channel import: 2 unknown field paths" in text
    assert "ignore" in text and "rename -> rows[].values.name" in text and "abc:2" in text
    assert "event_type=invoiced" in gaps_report(health.entries())
    assert rule_covering("data.items[].x", FieldRules(drop=("data.items",))) == "drop"
    assert rule_covering("data.itemsx", FieldRules(drop=("data.items",))) == ""
    assert drift_report([]) == "no schema drift recorded"


# --- replay -----------------------------------------------------------------------------------


def _unmapped_import(store, health=None):
    """An imported row whose event type the table did not know when it arrived."""
    body = message_body("store-sh-01", "", "f.csv", "b" * 64, TZ, [
        (2, {"channel_order_id": "SO-9", "event_type": "created", "event_time": "2026-11-19 10:00:00",
             "total_amount": "10.00", "sku": "A", "quantity": "1", "unit_price": "10.00"})])
    later = message_body("store-sh-01", "", "f.csv", "b" * 64, TZ, [
        (3, {"channel_order_id": "SO-9", "event_type": "settled", "event_time": "2026-11-19 11:00:00"})])
    for b in (body, later):
        map_all([IntakeMessage.wrap("import", "2026-11-19T03:00:00.000+00:00", "r", "", {}, b)], store, health)
    return hub_order_id("store-sh-01", "SO-9")


def test_replaying_an_unmapped_entry_applies_it_once_the_table_knows_the_code(monkeypatch):
    store = InMemoryOrderStore()
    order_id = _unmapped_import(store)
    assert store.get_order(order_id).status == "PENDING_PAYMENT"
    entries = [e for e in store.list_events(order_id) if e.outcome == "unmapped"]
    assert len(entries) == 1
    # Replaying before the fix changes nothing ...
    plan = plan_replay(entries, NOW)
    assert [m.replay_of for _, m in plan.messages] == [f"{order_id}#{entries[0].event_key}"]
    assert [o.outcome for o in map_all([m for _, m in plan.messages], store)] == ["duplicate"]
    # ... and after the mapping table learns the code, the same replay applies it.
    monkeypatch.setitem(STATUS_MAP, "settled", (EventKind.COMPLETED,))
    outcomes = map_all([m for _, m in plan_replay(entries, NOW).messages], store)
    assert [o.outcome for o in outcomes] == ["applied"]
    assert store.get_order(order_id).status == "COMPLETED"


def test_replay_sends_each_stored_request_once_and_marks_it():
    store = InMemoryOrderStore()
    order_id = _unmapped_import(store)
    entries = store.list_events(order_id)
    plan = plan_replay(entries + entries, NOW)
    assert len(plan.messages) == 2 and len(plan.same_request) == 2
    sender = FakeSender()
    result = send_plan(plan, sender)
    assert (result.planned, result.sent, result.failure) == (2, 2, "")
    assert [m.replay_of for m in sender.sent] == [replay_of(e) for e in sorted(entries, key=lambda e: e.event_key)]
    assert all(m.channel == "import" and m.body == e.raw_body for m, e in zip(sender.sent, entries, strict=True))
