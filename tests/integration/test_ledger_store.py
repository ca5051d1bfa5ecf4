"""The payment voucher ledger on DynamoDB (moto), its table made as the topology declares it: a record is
written once whoever books it how often and in whatever order, a conflicting report gets the held record
back, a day is read whole across its index shards, an order's records by id, and a typical WeChat Pay or
Alipay record costs one write unit plus one for the index."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from reliability.concurrency import atomic_aws_calls
from unit.moto_tables import RecordingClient

from infra.local.resources import Provisioned, _table, function_environment
from infra.topology import PAYMENTS_TABLE, build_topology
from orderhub.models.order import LedgerLine, MethodClass, MoneyKind, MoneyState
from orderhub.payments.ledger import InMemoryLedger, LedgerRecord
from orderhub.store.ledger import (
    BY_DAY_INDEX,
    DAY_SHARDS,
    DynamoLedger,
    LedgerLayoutError,
    booking_write_units,
    index_entry,
    record_from_item,
    record_to_item,
)

REGION = "ap-southeast-1"
DAY = "2026-11-11"
_tables = itertools.count()


def _payments_table(client) -> str:
    """A fresh payments table, made by the local runtime's own code from the topology's declaration."""
    name = f"payments-{next(_tables)}"
    _table(client, build_topology().table(PAYMENTS_TABLE), name, Provisioned(REGION, "123456789012"))
    return name


@pytest.fixture
def dynamodb() -> Iterator[RecordingClient]:
    with mock_aws():
        yield RecordingClient(boto3.client("dynamodb", region_name=REGION))


@pytest.fixture
def ledger(dynamodb: RecordingClient) -> DynamoLedger:
    return DynamoLedger(dynamodb, _payments_table(dynamodb))


# --- records as the payment channels book them --------------------------------------------------------------


def wechatpay_transaction(out_trade_no: str, transaction_id: str, total: int) -> str:
    """A WeChat Pay API v3 TRANSACTION.SUCCESS resource as decrypted (a JSAPI payment with a coupon)."""
    return json.dumps({
        "mchid": "1900009191", "appid": "wxd678efh567hg6787", "out_trade_no": out_trade_no,
        "transaction_id": transaction_id, "trade_type": "JSAPI", "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功", "bank_type": "CMB_CREDIT", "attach": "",
        "success_time": "2026-11-11T00:00:03+08:00", "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": total, "payer_total": total - 2000, "currency": "CNY", "payer_currency": "CNY"},
        "scene_info": {"device_id": "013467007045764"},
        "promotion_detail": [{"coupon_id": "109519", "name": "双十一满减券", "scope": "GLOBAL", "type": "CASH",
                              "amount": 2000, "stock_id": "931386", "wechatpay_contribute": 0,
                              "merchant_contribute": 2000, "other_contribute": 0, "currency": "CNY",
                              "goods_detail": [{"goods_id": "SKU-88231", "quantity": 1, "unit_price": total,
                                                "discount_amount": 2000}]}],
    }, ensure_ascii=False, separators=(",", ":"))


def alipay_form(out_trade_no: str, trade_no: str, total: str, subject: str = "订单支付") -> str:
    """An Alipay trade_status_sync notification (TRADE_SUCCESS) as received: the form with its RSA2 signature."""
    signature = base64.b64encode(b"".join(hashlib.sha256(trade_no.encode() + bytes([i])).digest()
                                          for i in range(8))).decode()  # 2048-bit: 344 characters
    params = {
        "gmt_create": "2026-11-11 00:00:01", "charset": "utf-8", "seller_email": "finance@example.com",
        "subject": subject, "buyer_id": "2088102177846880", "invoice_amount": total,
        "notify_id": "2026111100222000003000001234567890",
        "fund_bill_list": json.dumps([{"amount": total, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")),
        "notify_type": "trade_status_sync", "trade_status": "TRADE_SUCCESS", "receipt_amount": total,
        "buyer_pay_amount": total, "app_id": "2021000117612345", "sign_type": "RSA2", "seller_id": "2088101117955611",
        "gmt_payment": "2026-11-11 00:00:03", "notify_time": "2026-11-11 00:00:04", "version": "1.0",
        "out_trade_no": out_trade_no, "total_amount": total, "trade_no": trade_no, "auth_app_id": "2021000117612345",
        "buyer_logon_id": "159***@example.com", "point_amount": "0.00", "sign": signature,
    }
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in params.items())


def record(provider: str = "wechatpay", reference: str = "4200202611110000012168637674", *,
           state: MoneyState = MoneyState.CONFIRMED, amount: int = 25_800, kind: MoneyKind = MoneyKind.PAYMENT,
           occurred_at: str = "2026-11-10T16:00:03.000+00:00", business_date: str = DAY,
           order_id: str = "oh_2gq4zdj7h6m3rkp5xw1bn8yc", out_trade_no: str = "M20261111000123",
           payload: str | None = None, source_event_id: str = "3a124c64-7e02-5f05-b7c1-dce27f7695f5",
           **line: object) -> LedgerRecord:
    if payload is None:
        payload = (wechatpay_transaction(out_trade_no, reference, amount) if provider == "wechatpay"
                   else alipay_form(out_trade_no, reference, f"{amount // 100}.{amount % 100:02d}"))
    return LedgerRecord(
        line=LedgerLine(provider=provider, kind=kind, reference=reference, state=state, amount=amount,
                        currency="CNY", method=MethodClass.ONLINE, merchant_reference=out_trade_no,
                        occurred_at=occurred_at, business_date=business_date, **line),  # type: ignore[arg-type]
        order_id=order_id, channel="mall", channel_order_id=out_trade_no, source=provider,
        source_event_id=source_event_id, booked_at="2026-11-10T16:00:04.117+00:00",
        account="1900009191" if provider == "wechatpay" else "2088101117955611", payload=payload)


def _items(client: RecordingClient, table: str) -> list[dict]:
    return client.scan(TableName=table)["Items"]


# --- written once ------------------------------------------------------------------------------------------


def test_booking_a_record_twice_writes_it_once_and_reads_nothing(dynamodb: RecordingClient,
                                                                  ledger: DynamoLedger) -> None:
    # Given a WeChat Pay payment booked once
    first = record()
    assert ledger.book([first]) == {first.record_id: first.line}
    # When the same callback is booked again (a retry: another notification id, the same record)
    again = record(source_event_id="retry-2")
    held = ledger.book([again])
    # Then one item is there, the first booking's, and the refusal itself said so: no read was made
    assert held == {first.record_id: first.line}
    (item,) = _items(dynamodb, ledger.table)
    assert record_from_item(item) == first
    puts = [kwargs for name, kwargs in dynamodb.calls if name == "put_item"]
    assert [p["ConditionExpression"] for p in puts] == ["attribute_not_exists(record_id)"] * 2
    assert not [name for name, _ in dynamodb.calls if name in ("get_item", "update_item", "delete_item")]


def test_a_report_that_disagrees_gets_the_held_record_back(dynamodb: RecordingClient, ledger: DynamoLedger) -> None:
    # Given a payment booked for 258.00
    first = record(amount=25_800)
    ledger.book([first])
    # When the same record id is reported again saying 285.00
    conflicting = record(amount=28_500, source_event_id="forged-or-wrong")
    held = ledger.book([conflicting])
    # Then the ledger answers with what it holds, and holds it unchanged, payload and all
    assert held[first.record_id].amount == 25_800
    assert held[first.record_id] == first.line != conflicting.line
    (item,) = _items(dynamodb, ledger.table)
    assert record_from_item(item) == first


def test_a_later_state_of_a_movement_is_a_record_of_its_own(ledger: DynamoLedger) -> None:
    # Given an abnormal refund, then its success
    pending = record(kind=MoneyKind.REFUND, reference="50302026112200000249956699358", state=MoneyState.PENDING,
                     amount=5_800, occurred_at="2026-11-23T02:59:00.000+00:00", business_date="2026-11-23",
                     payment_reference="4200202611110000012168637674")
    confirmed = record(kind=MoneyKind.REFUND, reference="50302026112200000249956699358",
                       state=MoneyState.CONFIRMED, amount=5_800, occurred_at="2026-11-23T03:00:00.000+00:00",
                       business_date="2026-11-23", payment_reference="4200202611110000012168637674")
    # When both are booked, in one call
    held = ledger.book([pending, confirmed])
    # Then both are held, side by side
    assert held == {pending.record_id: pending.line, confirmed.record_id: confirmed.line}
    assert ledger.records_of_day("2026-11-23", with_payloads=True) == sorted([pending, confirmed],
                                                                             key=lambda r: r.record_id)


def _booked(trades: list[tuple[int, int]]) -> list[LedgerRecord]:
    return [record(reference=f"42002026111100000{trade:011d}", amount=amount, source_event_id=f"n-{trade}")
            for trade, amount in trades]


@settings(max_examples=30)
@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from([100, 25_800, 99_900])), min_size=1, max_size=12),
       st.integers(1, 4))
def test_any_order_of_duplicate_and_conflicting_reports_leaves_the_first_of_each(trades, per_call):
    # Given reports of five payments, each reported any number of times with any amount, in any order
    reports = _booked(trades)
    expected = InMemoryLedger()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        ledger = DynamoLedger(client, _payments_table(client))
        # When they are booked in calls of a few
        for start in range(0, len(reports), per_call):
            batch = reports[start:start + per_call]
            # Then every call answers what a dict keeping the first would answer
            assert ledger.book(batch) == expected.book(batch)
        # And the table holds the first report of each record, and nothing else
        stored = sorted((record_from_item(i) for i in client.scan(TableName=ledger.table)["Items"]),
                        key=lambda r: r.record_id)
    assert stored == sorted(expected.records.values(), key=lambda r: r.record_id)


def test_concurrent_bookers_of_one_record_write_one_item(dynamodb: RecordingClient, ledger: DynamoLedger) -> None:
    # Given eight execution environments each holding a report of the same record, with different amounts
    reports = [record(amount=10_000 + i, source_event_id=f"delivery-{i}") for i in range(8)]
    start = threading.Barrier(len(reports))

    def book(report: LedgerRecord) -> LedgerLine:
        start.wait()
        return ledger.book([report])[report.record_id]

    # When they book at once, DynamoDB applying each call atomically
    with atomic_aws_calls(), ThreadPoolExecutor(max_workers=len(reports)) as pool:
        held = list(pool.map(book, reports))
    # Then one item was written, one report's, and every booker was told that one
    (item,) = _items(dynamodb, ledger.table)
    stored = record_from_item(item)
    assert stored in reports
    assert held == [stored.line] * len(reports)


# --- reading ------------------------------------------------------------------------------------------------


def test_a_day_is_read_whole_across_its_shards_without_payloads(dynamodb: RecordingClient,
                                                                 ledger: DynamoLedger) -> None:
    # Given forty payments of 11.11 and some of the days either side (23:59 CST is still the 10th)
    of_day = [record(reference=f"4200202611110000{i:012d}", amount=1_000 + i) for i in range(40)]
    others = [record(reference=f"4200202611100000{i:012d}", occurred_at="2026-11-10T15:59:59.000+00:00",
                     business_date="2026-11-10") for i in range(5)]
    others += [record(reference=f"4200202611120000{i:012d}", occurred_at="2026-11-11T16:00:00.000+00:00",
                      business_date="2026-11-12") for i in range(5)]
    ledger.book(of_day + others)
    # Then the day's records went to every shard of its index
    days = {item["day"]["S"] for item in _items(dynamodb, ledger.table) if item["day"]["S"].startswith(DAY)}
    assert days == {f"{DAY}#{shard}" for shard in range(DAY_SHARDS)}
    # When the day is read
    dynamodb.calls.clear()
    found = ledger.records_of_day(DAY)
    # Then it is exactly the day's records, from one query per shard, the payloads left in the table
    without_payloads = [LedgerRecord(**{**r.__dict__, "payload": ""}) for r in of_day]
    assert found == sorted(without_payloads, key=lambda r: r.record_id)
    queries = [kwargs for name, kwargs in dynamodb.calls if name == "query"]
    assert len(queries) == DAY_SHARDS and {q["IndexName"] for q in queries} == {BY_DAY_INDEX}
    # And asked for them, the payloads come from the records themselves
    assert ledger.records_of_day(DAY, with_payloads=True) == sorted(of_day, key=lambda r: r.record_id)
    assert ledger.records_of_day("2026-11-09") == []


def test_an_orders_records_are_read_by_the_ids_it_lists(dynamodb: RecordingClient, ledger: DynamoLedger) -> None:
    # Given an order with 120 records (more than one BatchGetItem takes) and another order's record
    mine = [record(reference=f"42002026111100000{i:011d}") for i in range(120)]
    theirs = record(reference="4200202611119999999999999999", order_id="oh_someoneelse000000000000")
    ledger.book([*mine, theirs])
    # When the order's records are read by the ids it lists, plus one it only thinks it has and one of another's
    dynamodb.calls.clear()
    found = ledger.records_of_order(mine[0].order_id,
                                    [r.record_id for r in mine] + ["wechatpay:payment:nope#confirmed@x",
                                                                   theirs.record_id])
    # Then its records come back whole, in record id order, and nothing else
    assert found == sorted(mine, key=lambda r: r.record_id)
    gets = [kwargs for name, kwargs in dynamodb.calls if name == "batch_get_item"]
    assert len(gets) == 2 and all(req["ConsistentRead"] for g in gets for req in g["RequestItems"].values())


def test_an_orders_records_cannot_be_asked_for_without_their_ids(ledger: DynamoLedger) -> None:
    # The table has no index by order (it would bill a write unit per record): the order lists the ids.
    with pytest.raises(TypeError, match="record ids"):
        ledger.records_of_order("oh_2gq4zdj7h6m3rkp5xw1bn8yc")


# --- the write-unit budget ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider, reference", [("wechatpay", "4200202611110000012168637674"),
                                                 ("alipay", "2026111122001446880501234567")])
def test_a_typical_payment_record_is_one_write_unit_and_its_index_entry_one(dynamodb: RecordingClient,
                                                                            ledger: DynamoLedger, provider: str,
                                                                            reference: str) -> None:
    # Given a payment as the channel books it, with the provider's payload (WeChat Pay's resource, ~700
    # bytes; Alipay's form with its signature, ~1.1 KB)
    booked = record(provider, reference)
    assert len(booked.payload.encode()) >= 700
    item = record_to_item(booked)
    # Then the record fits one write unit and the index copies what the store counts, in one more
    assert booking_write_units(item) == (1, 1)
    ledger.book([booked])
    (entry,) = dynamodb.query(TableName=ledger.table, IndexName=BY_DAY_INDEX, KeyConditionExpression="#d = :d",
                              ExpressionAttributeNames={"#d": "day"},
                              ExpressionAttributeValues={":d": item["day"]})["Items"]
    assert entry == index_entry(item)
    (stored,) = _items(dynamodb, ledger.table)
    assert stored == item


def test_a_long_alipay_subject_still_fits_one_write_unit() -> None:
    # A 20-character Chinese subject is 180 bytes percent-encoded: the form is ~1.4 KB.
    form = alipay_form("M20261111000124", "2026111122001446880501234567", "258.00",
                       subject="双十一预售 羊毛双面呢大衣女中长款 2026新款 等3件商品")
    assert len(form) > 1_200
    assert booking_write_units(record_to_item(record("alipay", "2026111122001446880501234567",
                                                     payload=form))) == (1, 1)


# --- the item layout ----------------------------------------------------------------------------------------


@given(reference=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=64),
       state=st.sampled_from(list(MoneyState)), fee=st.none() | st.integers(0, 10**6), cumulative=st.booleans(),
       payload=st.sampled_from(["", "short", wechatpay_transaction("M1", "4200", 1), "é" * 3_000]))
def test_an_item_reads_back_as_the_record_it_was_made_from(reference, state, fee, cumulative, payload):
    # References may hold the id's own separators ('#', '@', ':'): the state and time are read from the end.
    booked = record(reference=reference, state=state, fee=fee, cumulative=cumulative, payload=payload)
    item = record_to_item(booked)
    assert record_from_item(item) == booked
    assert ("p" in item or "pz" in item) is bool(payload)


def test_an_item_of_a_layout_this_code_does_not_know_is_refused() -> None:
    item = record_to_item(record())
    item["r"] = {"S": "[2]"}
    with pytest.raises(LedgerLayoutError, match="layout 2"):
        record_from_item(item)


# --- as the local runtime provisions it ---------------------------------------------------------------------


def test_the_mapper_and_the_ledger_api_find_the_ledger_where_the_runtime_made_it(hub) -> None:
    # Given the hub as the local runtime provisions it, and the functions' environments
    mapper = function_environment(hub.topology.function("status_mapper"), hub.config, hub.res)
    api = function_environment(hub.topology.function("ledger_api"), hub.config, hub.res)
    assert mapper["PAYMENTS_TABLE"] == api["PAYMENTS_TABLE"] == hub.res.tables[PAYMENTS_TABLE]
    # When the mapper's ledger books a record
    booked = record()
    DynamoLedger(hub.client("dynamodb"), mapper["PAYMENTS_TABLE"]).book([booked])
    # Then the ledger API's reads it by day and by order
    reader = DynamoLedger(hub.client("dynamodb"), api["PAYMENTS_TABLE"])
    assert [r.record_id for r in reader.records_of_day(DAY)] == [booked.record_id]
    assert reader.records_of_order(booked.order_id, [booked.record_id]) == [booked]
    table = hub.client("dynamodb").describe_table(TableName=api["PAYMENTS_TABLE"])["Table"]
    assert "TimeToLiveDescription" not in table
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["r"]}
