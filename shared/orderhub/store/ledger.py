"""The payments table: the payment voucher ledger (PAY-2), one item per record, written once, never changed.

A record is one report of a money movement in one state at one time (`LedgerLine.record_id`:
`<provider>:<kind>:<reference>#<state>@<reported time>`). Booking it is one `PutItem` conditional on
`attribute_not_exists(record_id)`: a repeated or late callback writes nothing, and the refused put hands
back the record already there (`ReturnValuesOnConditionCheckFailure=ALL_OLD`, no read billed), which may
disagree on the money: the first booking stands and the caller sees the conflict. Nothing updates or
deletes an item: the functions' roles hold no such action on the table and its resource policy denies
them to everyone (infra/topology.py declares it `append_only`). Vouchers have no TTL: they are kept for
as long as the books, 30 years under China's accounting-archive rules (会计档案管理办法).

The item, sized for the write-unit budget (<= 2 write units per booked record, the index write included):

- `record_id` (partition key). The provider, kind, reference, state and reported time are read back out
  of it, so they are not stored twice.
- `day`: `<business date>#<shard>`, the key of index `by-day`. A day's records are spread over
  `DAY_SHARDS` partitions by a hash of the record id, so a sales day's callbacks do not all write one
  index partition. Shards may only ever be added: readers query every shard there is now.
- `r`: the rest of the record as one compact JSON list (`_FIELDS`, led by its layout version): the SDK
  (de)serialises an item value by value, and names cost bytes in every item.
- `p` (text) or `pz` (zlib, above `COMPRESS_ABOVE_BYTES`): the provider's payload as the hub read it.
  It is compressed against a preset dictionary of the providers' field names and fixed values
  (`_PAYLOAD_DICTIONARY`): a payload of ~1 KB has too few repeats of its own to shrink much, and an
  Alipay form with its RSA2 signature would otherwise take the record past one write unit. The zlib
  stream names its dictionary (its Adler-32), so a dictionary is never changed once used: another one is
  added beside it.

The index projects `r` only (INCLUDE): a day's journal and totals need the money and whose it was, not
the payloads, so its write is one unit even when a payload makes the record itself larger. An order's
records are read by id (`BatchGetItem`): the order item lists them (`Order.ledger`), so no second index
copies every record for that.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_core import from_json, to_json

from orderhub.models.order import LedgerLine, MethodClass, MoneyKind, MoneyState
from orderhub.payments.ledger import LedgerRecord
from orderhub.store import DynamoTable, is_condition_failure
from orderhub.store.attributes import write_units

BY_DAY_INDEX = "by-day"  # infra/topology.py declares it (an infrastructure test keeps the two in step)
DAY_KEY = "day"
# What the index copies besides the keys (record_id, day).
DAY_PROJECTION = ("r",)
# Index partitions per business day. Only ever raise it: a day written with fewer shards is still read whole.
DAY_SHARDS = 4
# Payloads above this are stored zlib-compressed (when that is shorter): against the dictionary below even
# a short one shrinks, and the bytes decide the write unit.
COMPRESS_ABOVE_BYTES = 128
BATCH_GET_MAX = 100  # keys per BatchGetItem

_LAYOUT = 1
# `r`, after its layout version: the line's money (the rest of the line is in the keys), then the record's.
_FIELDS = ("amount", "currency", "method", "fee", "payment_reference", "merchant_reference", "cumulative", "note",
           "order_id", "channel", "channel_order_id", "source", "source_event_id", "booked_at", "account", "actor")
_LINE_FIELDS = _FIELDS[:8]


class LedgerLayoutError(ValueError):
    """An item this code cannot read (a newer layout), or a record whose id does not spell its line."""


# What the providers' payloads are made of, the most frequent last (zlib reaches the end of a dictionary with
# the shortest distances): WeChat Pay API v3's decrypted refund and transaction resources, then the fields
# of Alipay's asynchronous notification form (trade_status_sync; payment, refund, close). Field names and
# fixed values only: nothing of any one merchant or buyer.
_PAYLOAD_DICTIONARY = (
    '{"mchid":"","out_trade_no":"","transaction_id":"4200","out_refund_no":"","refund_id":"5030",'
    '"refund_status":"SUCCESS","refund_status":"ABNORMAL","refund_status":"CLOSED","success_time":"+08:00",'
    '"user_received_account":"支付用户零钱","amount":{"total":,"refund":,"payer_total":,"payer_refund":}}'
    '{"mchid":"","appid":"wx","out_trade_no":"","transaction_id":"4200","trade_type":"JSAPI",'
    '"trade_type":"NATIVE","trade_type":"APP","trade_type":"MWEB","trade_state":"SUCCESS",'
    '"trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"+08:00",'
    '"payer":{"openid":""},"amount":{"total":,"payer_total":,"currency":"CNY","payer_currency":"CNY"},'
    '"scene_info":{"device_id":""},"promotion_detail":[{"coupon_id":"","name":"","scope":"GLOBAL",'
    '"scope":"SINGLE","type":"CASH","type":"NOCASH","amount":,"stock_id":"","wechatpay_contribute":0,'
    '"merchant_contribute":,"other_contribute":0,"currency":"CNY","goods_detail":[{"goods_id":"",'
    '"quantity":1,"unit_price":,"discount_amount":0,"goods_remark":""}]}]}'
    "&gmt_close=&gmt_refund=&out_biz_no=&refund_fee=&passback_params=&body=&voucher_detail_list="
    "&trade_status=TRADE_CLOSED&trade_status=TRADE_FINISHED&fund_bill_list=%5B%7B%22amount%22%3A%22"
    "%22%2C%22fundChannel%22%3A%22ALIPAYACCOUNT%22%7D%5D%22%2C%22fundChannel%22%3A%22PCREDIT%22%7D%5D"
    "%22%2C%22fundChannel%22%3A%22BANKCARD%22%7D%5D&point_amount=0.00&buyer_logon_id=%2A%2A%2A"
    "&notify_type=trade_status_sync&trade_status=TRADE_SUCCESS&invoice_amount=&receipt_amount="
    "&buyer_pay_amount=&total_amount=&charset=utf-8&charset=GBK&version=1.0&sign_type=RSA2&subject="
    "&seller_email=&app_id=2021&auth_app_id=2021&buyer_id=2088&seller_id=2088&notify_id=2026"
    "&out_trade_no=&trade_no=2026&gmt_create=2026-&gmt_payment=2026-&notify_time=2026-&sign="
).encode()
_ZLIB_LEVEL, _WINDOW_BITS, _MEM_LEVEL = 6, 13, 6  # as orderhub.store.attributes.compress, for the same reasons
# Dictionaries by the Adler-32 a stream made with one carries in its header (zlib's DICTID).
_DICTIONARIES = {zlib.adler32(d): d for d in (_PAYLOAD_DICTIONARY,)}


def pack_payload(raw: bytes) -> bytes:
    """A zlib stream of `raw`, compressed against the payload dictionary."""
    packer = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, _WINDOW_BITS, _MEM_LEVEL, zdict=_PAYLOAD_DICTIONARY)
    return packer.compress(raw) + packer.flush()


def unpack_payload(packed: bytes) -> bytes:
    """Any zlib stream: one with a preset dictionary (FDICT) is read with the dictionary its header names."""
    if len(packed) >= 6 and packed[1] & 0x20:
        dictionary = _DICTIONARIES.get(int.from_bytes(packed[2:6], "big"))
        if dictionary is None:
            raise LedgerLayoutError("payload compressed against a dictionary this code does not have")
        unpacker = zlib.decompressobj(zlib.MAX_WBITS, zdict=dictionary)
        return unpacker.decompress(packed) + unpacker.flush()
    return zlib.decompress(packed)


def day_shard(record_id: str, shards: int = DAY_SHARDS) -> int:
    """The index partition of a record within its day: stable across processes and releases (CRC-32)."""
    return zlib.crc32(record_id.encode()) % shards


def day_key(business_date: str, record_id: str, shards: int = DAY_SHARDS) -> str:
    return f"{business_date}#{day_shard(record_id, shards)}"


def day_keys(business_date: str, shards: int = DAY_SHARDS) -> list[str]:
    """Every index partition key of a day."""
    return [f"{business_date}#{shard}" for shard in range(shards)]


def split_record_id(record_id: str) -> tuple[str, str, str, str, str]:
    """(provider, kind, reference, state, occurred_at) of `<provider>:<kind>:<reference>#<state>@<time>`.

    The state and the time hold neither '#' nor '@', the provider and the kind no ':', so a reference may
    hold any of them."""
    head, at, occurred_at = record_id.rpartition("@")
    entry, hash_, state = head.rpartition("#")
    provider, colon1, rest = entry.partition(":")
    kind, colon2, reference = rest.partition(":")
    if not (at and hash_ and colon1 and colon2 and reference):
        raise LedgerLayoutError(f"not a ledger record id: {record_id!r}")
    return provider, kind, reference, state, occurred_at


def record_to_item(record: LedgerRecord, shards: int = DAY_SHARDS) -> dict[str, Any]:
    """The payments item of a record (see the module docstring)."""
    line = record.line
    record_id = line.record_id
    if split_record_id(record_id) != (line.provider, line.kind._value_, line.reference, line.state._value_,
                                      line.occurred_at):
        raise LedgerLayoutError(f"record id {record_id!r} does not spell its line")
    values = line.__dict__
    described = [_LAYOUT, *(values[name] for name in _LINE_FIELDS), record.order_id, record.channel,
                 record.channel_order_id, record.source, record.source_event_id, record.booked_at, record.account,
                 record.actor]
    item: dict[str, Any] = {"record_id": {"S": record_id},
                            DAY_KEY: {"S": day_key(line.business_date, record_id, shards)},
                            "r": {"S": to_json(described).decode()}}
    payload = record.payload
    if payload:
        raw = payload.encode()
        packed = pack_payload(raw) if len(raw) > COMPRESS_ABOVE_BYTES else raw
        if len(packed) < len(raw):
            item["pz"] = {"B": packed}
        else:
            item["p"] = {"S": payload}
    return item


def record_from_item(item: dict[str, Any]) -> LedgerRecord:
    """The record of a payments item, or of an index entry (which holds no payload: it comes back "")."""
    record_id = item["record_id"]["S"]
    provider, kind, reference, state, occurred_at = split_record_id(record_id)
    described = from_json(item["r"]["S"])
    if described[0] != _LAYOUT:
        raise LedgerLayoutError(f"{record_id}: item layout {described[0]!r}, this code reads {_LAYOUT}")
    values = dict(zip(_FIELDS, described[1:], strict=True))
    line = LedgerLine(provider=provider, kind=MoneyKind(kind), reference=reference, state=MoneyState(state),
                      occurred_at=occurred_at, business_date=item[DAY_KEY]["S"].rpartition("#")[0],
                      amount=values["amount"], currency=values["currency"], method=MethodClass(values["method"]),
                      fee=values["fee"], payment_reference=values["payment_reference"],
                      merchant_reference=values["merchant_reference"], cumulative=values["cumulative"],
                      note=values["note"])
    return LedgerRecord(line=line, order_id=values["order_id"], channel=values["channel"],
                        channel_order_id=values["channel_order_id"], source=values["source"],
                        source_event_id=values["source_event_id"], booked_at=values["booked_at"],
                        account=values["account"], actor=values["actor"], payload=_payload(item))


def _payload(item: dict[str, Any]) -> str:
    if "pz" in item:
        return unpack_payload(bytes(item["pz"]["B"])).decode()
    return item["p"]["S"] if "p" in item else ""


def index_entry(item: dict[str, Any]) -> dict[str, Any]:
    """What index `by-day` holds of an item: its keys and the projected attributes."""
    return {name: item[name] for name in ("record_id", DAY_KEY, *DAY_PROJECTION) if name in item}


def booking_write_units(item: dict[str, Any]) -> tuple[int, int]:
    """Write units billed for booking a new record: (the table's put, the index's write)."""
    return write_units(item), write_units(index_entry(item))


class DynamoLedger(DynamoTable):
    """The `Ledger` protocol on the payments table (module docstring)."""

    TABLE_ENV = "PAYMENTS_TABLE"

    def book(self, records: Sequence[LedgerRecord]) -> dict[str, LedgerLine]:
        """Write each record unless its id is booked; by record id, the line the ledger holds (the one just
        written, or the one found, which may disagree on the money)."""
        held: dict[str, LedgerLine] = {}
        for record in records:
            held[record.record_id] = self._book_one(record)
        return held

    def _book_one(self, record: LedgerRecord) -> LedgerLine:
        try:
            self.client.put_item(TableName=self.table, Item=record_to_item(record),
                                 ConditionExpression="attribute_not_exists(record_id)",
                                 ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            kept = (getattr(exc, "response", None) or {}).get("Item") or self._get(record.record_id)
            if kept is None:  # refused, yet nothing there: it cannot be, as nothing deletes
                raise
            return record_from_item(kept).line
        return record.line

    def _get(self, record_id: str) -> dict[str, Any] | None:
        reply = self.client.get_item(TableName=self.table, Key={"record_id": {"S": record_id}}, ConsistentRead=True)
        return reply.get("Item")

    def records(self, record_ids: Iterable[str]) -> list[LedgerRecord]:
        """The records booked under these ids (unknown ids are left out), by record id; consistent reads."""
        keys = sorted(set(record_ids))
        found: list[LedgerRecord] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {self.table: {"Keys": [{"record_id": {"S": k}} for k in
                                                             keys[start:start + BATCH_GET_MAX]],
                                                    "ConsistentRead": True}}
            while request:
                reply = self.client.batch_get_item(RequestItems=request)
                found += [record_from_item(item) for item in reply.get("Responses", {}).get(self.table, [])]
                request = reply.get("UnprocessedKeys") or {}
        return sorted(found, key=lambda r: r.record_id)

    def records_of_order(self, order_id: str, record_ids: Iterable[str] | None = None) -> list[LedgerRecord]:
        """The order's records, by record id. The table is read by id: pass the ids the order lists
        (`Order.ledger`); an id whose record belongs to another order is left out."""
        if record_ids is None:
            raise TypeError("the payments table has no index by order: pass the record ids the order lists")
        return [r for r in self.records(record_ids) if r.order_id == order_id]

    def records_of_day(self, business_date: str, with_payloads: bool = False) -> list[LedgerRecord]:
        """The records of a business day (YYYY-MM-DD), by record id, from index `by-day` (eventually
        consistent: a record booked a moment ago may not be listed yet). The index holds no payloads: they
        come back "" unless `with_payloads`, which reads the records themselves (a read per 100)."""
        found: list[LedgerRecord] = []
        for key in day_keys(business_date):
            request: dict[str, Any] = {"TableName": self.table, "IndexName": BY_DAY_INDEX,
                                       "KeyConditionExpression": "#day = :day",
                                       "ExpressionAttributeNames": {"#day": DAY_KEY},
                                       "ExpressionAttributeValues": {":day": {"S": key}}}
            while True:
                reply = self.client.query(**request)
                found += [record_from_item(item) for item in reply.get("Items", [])]
                if "LastEvaluatedKey" not in reply:
                    break
                request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        if with_payloads:
            return self.records(r.record_id for r in found)
        return sorted(found, key=lambda r: r.record_id)
