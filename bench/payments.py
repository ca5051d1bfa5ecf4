"""Money in: WeChat Pay and Alipay callbacks per core, DynamoDB write units per callback, US$ per million.

    python -m bench.payments [--callbacks 600] [--mall 600] [--repeats 2] [--json OUT]

Traffic. Per provider, `--callbacks` distinct notifications built, signed (and for WeChat Pay encrypted) by
the local providers (infra.standins.wechatpay, .alipay) for mall orders that exist before the callbacks
arrive (each created by its `order.created` webhook, mapped into the table every round starts from):
WeChat Pay pays every order (TRANSACTION.SUCCESS), refunds every 5th in part (REFUND.SUCCESS), every 20th
also abnormally then finished by hand (REFUND.ABNORMAL, REFUND.SUCCESS of the same refund), every 25th a
refund closed (REFUND.CLOSED); Alipay pays every order (TRADE_SUCCESS), refunds every 5th in part
(TRADE_SUCCESS + refund_fee), every 20th the rest (TRADE_CLOSED), and every 7th reports the trade finished
(TRADE_FINISHED: the same payment again, nothing new to book). About 10 % of the notifications arrive
again 16-40 callbacks later, as the providers resend one they think unacknowledged (WeChat Pay signs each
attempt anew; Alipay resends the same signed form). Every request is an API Gateway HTTP API v2.0 event for
POST /webhooks/<provider>; the handlers' clocks are fixed at the run's start (the signatures are made for it).

CPU, per provider: functions.webhook_ingest (verify, decrypt, read, enqueue) and functions.status_mapper
(the order read, the event log, the ledger's conditional PutItem on the payments table, the order write)
on real boto3 clients answered under botocore (bench.wire; the stub's own CPU taken out), the mapper on
SQS batches of 10 of exactly what ingest enqueued. time.process_time in chunks alternating the providers
and the anchor, each chunk's best of the repeats, summed. GOAL: ingest + mapping >= 2,000 callbacks/s per
core. ANCHOR: the mall channel (HMAC-signed JSON, no ledger) on the same path in the same run. "Each step
alone" (best of 3 over 200 callbacks) shows where the time goes: the RSA-SHA256 verification, AES-GCM,
the channel's authenticate and parse, the ledger's item and its PutItem, the mapper on in-memory fakes
(the hub's own code, no botocore).

Write units, from the items actually written, as DynamoDB bills them (bench.billing.bill_dynamodb: 1 per
started KB of the larger of the old and new item, failed conditional writes included), except that an
index write is billed on what the index copies (its projection: `by-day` keeps the keys and `r`), which
must agree with `orderhub.store.ledger.booking_write_units` for every item booked (checked). Counted per
intake message, first deliveries and resends apart. GOAL: <= 2 write units per ledger record booked
(table + index). ANCHOR, measured on the same fakes with the same items: the callback made idempotent the
common way, Powertools idempotency (`idempotent_function`, DynamoDBPersistenceLayer: its in-progress
PutItem and completion UpdateItem, keyed by the notification) around a plain PutItem of each ledger item,
as the ledger of the same mapper. A record booked again (a redelivery after a crash between the ledger
write and the order write) is measured by booking every callback's records a second time.

Cost: both providers' callbacks interleaved, billed like bench.cost (bench.billing prices, batches as
Lambda's pollers form them at 10 callbacks/s and at a 300/s peak, each its own run of the mapper; the
ingest half is the same for every flow and runs once): HTTP API requests, Lambda requests and GB-s,
SQS requests, DynamoDB write and read units (the index included), Secrets Manager reads per execution
environment (SSM standard parameters are free), CloudWatch Logs (printed, platform records, access log)
and the replies' egress. The orders stream, domain events and fan-out behind the mapper are bench.cost's:
the same for both designs, and not part of taking the money in.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from bench._support import (
    Call,
    FakeLambdaContext,
    FakeSQS,
    Figure,
    Recorder,
    apigw_v2_event,
    apply_environment,
    dump_json,
    hub_config,
    install_config_stubs,
    message_attributes_for_lambda,
    physical,
    print_figures,
    quiet_stdout,
    sqs_event,
    topology,
)
from bench.billing import Bill, LogCapture, Traffic, bill_dynamodb, bill_sqs_batches, chunks64k, timed
from bench.cost_flows import API_REPLY_HEADERS, Wire, run_batches
from bench.cost_overheads import add_overheads
from bench.fake_dynamodb import FakeDynamo, hub_dynamo
from bench.wire import WireStub, real_client

GOAL_CALLBACKS_PER_S = 2000
GOAL_WU_PER_RECORD = 2
PROVIDERS = ("wechatpay", "alipay")
ANCHOR_CHANNEL = "mall"
RESEND_SHARE = 0.10  # of the distinct notifications, delivered once more
NORMAL = Traffic("10 callbacks/s", 10.0)
PEAK = Traffic("the 11.11 peak, 300 callbacks/s", 300.0)
IDEMPOTENCY_TABLE = physical("idempotency")
# The anchor keeps its idempotency records through the providers' resend schedules (WeChat Pay 24 h 4 min,
# Alipay ~24 h 24 min): with Powertools' default hour a late resend would book again.
ANCHOR_EXPIRY_S = 26 * 3600
_PRICES_FEN = (6800, 8800, 12900, 25800, 39900)
_READS = ("GetItem", "Query", "Scan")
_WRITES = ("PutItem", "BatchPut", "UpdateItem", "DeleteItem", "TransactPut")


# ---------------------------------------------------------------------------------------------
# Traffic: the providers' notifications, built by the local providers, for orders the hub has
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    provider: str
    reports: str  # what the notification reports ("payment", "refund", ...)
    event: dict[str, Any]  # the API Gateway HTTP API v2.0 event
    duplicate: bool = False  # a resend of a notification delivered before


@dataclass
class Stream:
    callbacks: list[Callback]
    orders: dict[str, int] = field(default_factory=dict)  # mall order number -> total (fen)

    @property
    def distinct(self) -> int:
        return sum(not c.duplicate for c in self.callbacks)


def _with_resends(first: list[Callback], resend: Callable[[int], Callback], rng: random.Random) -> list[Callback]:
    """The callbacks in order, ~RESEND_SHARE of them delivered again 16-40 positions later (further than the
    few bodies a warm function keeps read, as a provider's resend minutes later would be)."""
    out = list(first)
    for index in sorted(rng.sample(range(len(first)), round(len(first) * RESEND_SHARE)), reverse=True):
        out.insert(min(len(out), index + rng.randint(16, 40)), resend(index))
    return out


def wechatpay_stream(config: Any, distinct: int, now: datetime, seed: int = 5) -> Stream:
    """`distinct` WeChat Pay API v3 notifications of payments and refunds (module docstring), each request
    signed for `now`; resends are signed anew, as WeChat Pay signs each attempt."""
    from infra.standins.wechatpay import from_config
    from orderhub.clock import FixedClock

    rng = random.Random(seed)
    clock = FixedClock(now - timedelta(hours=3))
    standin = from_config(config, "http://hub.invalid", clock, rng=random.Random(seed))
    made: list[tuple[str, Any]] = []
    orders: dict[str, int] = {}
    number = 0
    while len(made) < distinct:
        number += 1
        order_no, total = f"WX{now:%m%d}{number:07d}", rng.choice(_PRICES_FEN) * rng.randint(1, 3)
        orders[order_no] = total
        clock.advance(3)
        paid = standin.payment_notification(order_no, total, clock.now())
        made.append(("payment", paid))
        transaction_id = paid.resource["transaction_id"]
        if number % 5 == 0:
            made.append(("refund", standin.refund_notification(transaction_id, total // 3, "SUCCESS", clock.now())))
        if number % 20 == 0:
            abnormal = standin.refund_notification(transaction_id, total // 4, "ABNORMAL", clock.now())
            made.append(("refund abnormal", abnormal))
            made.append(("refund finished", standin.refund_notification(  # the same refund, finished by hand
                transaction_id, total // 4, "SUCCESS", clock.now() + timedelta(seconds=1),
                refund_id=abnormal.resource["refund_id"])))
        if number % 25 == 0:
            made.append(("refund closed", standin.refund_notification(transaction_id, 100, "CLOSED", clock.now())))
    made = made[:distinct]

    def callback(index: int, duplicate: bool = False) -> Callback:
        reports, notification = made[index]
        headers, body = standin.request(notification, now)
        return Callback("wechatpay", reports, apigw_v2_event(body, headers, channel="wechatpay",
                                                               source_ip="101.226.103.10"), duplicate)

    first = [callback(i) for i in range(len(made))]
    return Stream(_with_resends(first, lambda i: callback(i, duplicate=True), rng), orders)


def alipay_stream(config: Any, distinct: int, now: datetime, seed: int = 6) -> Stream:
    """`distinct` Alipay asynchronous notifications of trades paid, refunded, closed and finished (module
    docstring); a resend is the same signed form, as Alipay resends it."""
    from infra.standins.alipay import AlipayStandIn
    from orderhub.clock import FixedClock

    rng = random.Random(seed)
    clock = FixedClock(now - timedelta(hours=3))
    standin = AlipayStandIn.from_config(config, "http://hub.invalid", clock)
    made: list[tuple[str, Any]] = []
    orders: dict[str, int] = {}
    number = 0
    while len(made) < distinct:
        number += 1
        order_no, total = f"AP{now:%m%d}{number:07d}", rng.choice(_PRICES_FEN) * rng.randint(1, 3)
        orders[order_no] = total
        clock.advance(3)
        trade_no = standin.pay(order_no, total)
        made.append(("payment", standin.notifications[-1]))
        if number % 5 == 0:
            clock.advance(1)
            standin.refund(trade_no, total // 3, out_biz_no=f"RF{order_no}-1")
            made.append(("refund", standin.notifications[-1]))
        if number % 20 == 0:
            clock.advance(1)
            standin.refund(trade_no, total - total // 3, out_biz_no=f"RF{order_no}-2")
            made.append(("refund, trade closed", standin.notifications[-1]))
        elif number % 7 == 0:
            clock.advance(1)
            standin.finish(trade_no)
            made.append(("trade finished", standin.notifications[-1]))
    made = made[:distinct]

    def callback(index: int, duplicate: bool = False) -> Callback:
        reports, notification = made[index]
        headers = {k.lower(): v for k, v in notification.headers.items()}
        return Callback("alipay", reports, apigw_v2_event(notification.body, headers, channel="alipay",
                                                            source_ip="110.75.143.10"), duplicate)

    first = [callback(i) for i in range(len(made))]
    return Stream(_with_resends(first, lambda i: callback(i, duplicate=True), rng), orders)


def interleaved(*streams: Stream) -> Stream:
    """The streams' callbacks taken in turn (both providers notifying at once), and all their orders."""
    callbacks: list[Callback] = []
    longest = max(len(s.callbacks) for s in streams)
    for i in range(longest):
        callbacks += [s.callbacks[i] for s in streams if i < len(s.callbacks)]
    orders: dict[str, int] = {}
    for s in streams:
        orders.update(s.orders)
    return Stream(callbacks, orders)


def orders_table(orders: dict[str, int], at: datetime) -> FakeDynamo:
    """The hub's tables holding the mall orders the callbacks pay, each created by its webhook (unpaid)."""
    from infra.demo.traffic import encode
    from orderhub.clock import FixedClock
    from orderhub.mapping import map_message
    from orderhub.models.envelope import IntakeMessage
    from orderhub.store.orders import DynamoOrderStore

    fake = with_idempotency_table(hub_dynamo())
    store, clock = DynamoOrderStore(client=fake), FixedClock(at)
    for order_no, total in orders.items():
        body = encode({"event_id": f"evt_{order_no}_01", "event_type": "order.created", "shop_id": "mini-01",
                       "event_time": (at - timedelta(hours=4)).isoformat(),
                       "order": {"order_no": order_no, "currency": "CNY", "total_amount": total,
                                 "lines": [{"sku": "TEA-LJ-250", "quantity": 1, "unit_price": total}]}})
        map_message(IntakeMessage.wrap("mall", at.isoformat(), f"setup-{order_no}", "", {}, body), store, clock)
    fake.stream_records.clear()
    return fake


def with_idempotency_table(fake: FakeDynamo) -> FakeDynamo:
    """The anchor's Powertools idempotency table beside the hub's (key `id`, as Powertools defaults)."""
    fake.key_schema[IDEMPOTENCY_TABLE] = ("id",)
    fake.tables.setdefault(IDEMPOTENCY_TABLE, {})
    return fake


def fresh_copy(base: FakeDynamo, recorder: Recorder | None = None) -> FakeDynamo:
    """A table set holding what `base` holds (items are replaced whole on write, never changed in place)."""
    fake = FakeDynamo(dict(base.key_schema), streams=tuple(base.streams), recorder=recorder)
    fake.tables = {name: dict(items) for name, items in base.tables.items()}
    return fake


# ---------------------------------------------------------------------------------------------
# The ANCHOR ledger: Powertools idempotency around a plain PutItem
# ---------------------------------------------------------------------------------------------


class IdempotentPutLedger:
    """The ledger write made idempotent the common way: Powertools `idempotent_function` with
    DynamoDBPersistenceLayer keyed by the callback (provider and notification id) around a plain PutItem
    of each record's item (the same item DynamoLedger writes). A first booking is the in-progress PutItem,
    the puts, and the completion UpdateItem; a callback booked again is the refused in-progress PutItem
    (ALL_OLD hands back the stored reply). It does not see a record held with other money: it answers
    with the records it was given."""

    def __init__(self, client: Any, table: str, idempotency_table: str = IDEMPOTENCY_TABLE) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        from orderhub.store.ledger import record_to_item

        persistence = DynamoDBPersistenceLayer(table_name=idempotency_table, boto3_client=client)
        config = IdempotencyConfig(event_key_jmespath="callback", expires_after_seconds=ANCHOR_EXPIRY_S)
        config.register_lambda_context(FakeLambdaContext(physical("status_mapper"), 512))  # type: ignore[arg-type]

        @idempotent_function(data_keyword_argument="callback", config=config, persistence_store=persistence)
        def book_callback(callback: dict[str, str], records: Sequence[Any]) -> dict[str, int]:
            for record in records:
                client.put_item(TableName=table, Item=record_to_item(record))
            return {"booked": len(records)}

        self._book = book_callback

    def book(self, records: Sequence[Any]) -> dict[str, Any]:
        if records:
            first = records[0]
            self._book(callback={"callback": f"{first.source}:{first.source_event_id}"}, records=records)
        return {record.record_id: record.line for record in records}


# ---------------------------------------------------------------------------------------------
# Write units as DynamoDB bills them, an index on what it copies
# ---------------------------------------------------------------------------------------------


class WriteUnits:
    """Write units of each DynamoDB call as DynamoDB bills it, by kind ("PutItem payments", "GSI write payments"):
    bench.billing's rules (1 per started KB of the larger of the old and new item, failed conditions included,
    2 per KB in a transaction; an index write for each item written with the index's keys), except that an
    index write is billed on what the index copies: the whole item (ALL, all bench.billing knows of) or the keys
    and the projected attributes (INCLUDE, as `by-day` copies only `r`)."""

    def __init__(self) -> None:
        self.indexes: dict[str, list[tuple[tuple[str, ...], tuple[str, ...] | None]]] = {}
        for table in topology().tables:
            keys = tuple(k for k in (table.partition_key, table.sort_key) if k)
            for index in table.indexes:
                index_keys = tuple(k for k in (index.partition_key, index.sort_key) if k)
                copied = None if index.projection is None else (*keys, *index_keys, *index.projection)
                self.indexes.setdefault(physical(table.name), []).append((index_keys, copied))
        self.narrow = frozenset(t for t, ix in self.indexes.items() if any(c is not None for _, c in ix))

    def of(self, c: Call) -> Counter:
        from orderhub.store.attributes import item_size_bytes, write_units

        out: Counter = Counter()
        if c.service != "dynamodb" or c.op not in _WRITES:
            return out
        table = c.table.removeprefix("orderhub-local-")
        size = max(item_size_bytes(i) if i else 0 for i in (c.item, c.old))
        units = max(1, -(-size // 1024))
        if c.op == "TransactPut":
            out[f"TransactWriteItems put {table}" + ("" if c.ok else " (cancelled)")] += 2 * units
        else:
            out[f"{c.op} {table}" + ("" if c.ok else " (failed condition)")] += units
        if c.ok and c.item is not None and c.op != "DeleteItem":
            for index_keys, copied in self.indexes.get(c.table, ()):
                if all(k in c.item for k in index_keys):
                    entry = c.item if copied is None else {k: c.item[k] for k in copied if k in c.item}
                    out[f"GSI write {table}"] += write_units(entry)
        return out

    def total(self, calls: Sequence[Call]) -> Counter:
        out: Counter = Counter()
        for c in calls:
            out.update(self.of(c))
        return out

    def check(self, calls: Sequence[Call]) -> None:
        """What is counted here must be bench.billing's count for tables it bills right (every index ALL), and
        the store's own count (`booking_write_units`) for each ledger item booked."""
        from orderhub.store.ledger import booking_write_units

        billed = Bill()
        bill_dynamodb(billed, [c for c in calls if c.table not in self.narrow])
        counted = self.total([c for c in calls if c.table not in self.narrow])
        if +billed.wru != +counted:
            raise RuntimeError(f"write units counted {dict(counted)}, bench.billing bills {dict(billed.wru)}")
        payments = physical("payments")
        for c in calls:
            if c.table == payments and c.op == "PutItem" and c.ok and c.item is not None:
                units = self.of(c)
                if (units["PutItem payments"], units["GSI write payments"]) != booking_write_units(c.item):
                    raise RuntimeError(f"{c.item['record_id']['S']}: counted {dict(units)}, the store says "
                                       f"{booking_write_units(c.item)}")


def is_ledger(kind: str) -> bool:
    """A write of the ledger: the payments table and its index, the anchor's idempotency records."""
    return kind.split(" (")[0].endswith((" payments", " idempotency"))


# ---------------------------------------------------------------------------------------------
# The functions, on real clients answered under botocore
# ---------------------------------------------------------------------------------------------


@dataclass
class Functions:
    """webhook_ingest and status_mapper with their clocks fixed at the run's start."""

    config: Any
    now: datetime
    ingest: Any = None
    mapper: Any = None
    queue_url: str = ""

    def __post_init__(self) -> None:
        from orderhub.clock import FixedClock

        env = apply_environment("webhook_ingest", self.config)
        self.queue_url = env["INTAKE_QUEUE_URL"]
        self.ingest = importlib.import_module("functions.webhook_ingest.handler")
        self.ingest._clock = FixedClock(self.now)
        apply_environment("status_mapper", self.config)
        self.mapper = importlib.import_module("functions.status_mapper.handler")
        self.mapper._clock = FixedClock(self.now)
        self.ingest_ctx = FakeLambdaContext(physical("webhook_ingest"), memory("webhook_ingest"))
        self.mapper_ctx = FakeLambdaContext(physical("status_mapper"), memory("status_mapper"))

    def use_queue(self, client: Any) -> None:
        from orderhub.intake import IntakeQueue

        self.ingest._queue = IntakeQueue(self.queue_url, client=client)

    def use_tables(self, client: Any, anchor: bool = False) -> None:
        from orderhub.store.health import ChannelHealth
        from orderhub.store.ledger import DynamoLedger
        from orderhub.store.orders import DynamoOrderStore

        self.mapper._store = DynamoOrderStore(client=client)
        self.mapper._health = ChannelHealth(client=client)
        self.mapper._ledger = (IdempotentPutLedger(client, physical("payments")) if anchor
                               else DynamoLedger(client=client))

    def post(self, event: dict[str, Any]) -> dict[str, Any]:
        return self.ingest.lambda_handler(event, self.ingest_ctx)

    def map(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self.mapper.lambda_handler(batch, self.mapper_ctx)

    @contextmanager
    def marking(self, marks: list[int], recorder: Recorder) -> Iterator[None]:
        """While on, the recorder's call count is noted as each intake message starts: its calls are then
        recorder.calls[marks[i]:marks[i + 1]] (the record handler maps the batch's messages one by one)."""
        original = self.mapper.record_handler

        def record_handler(record: Any) -> None:
            marks.append(len(recorder.calls))
            original(record)

        self.mapper.record_handler = record_handler
        try:
            yield
        finally:
            self.mapper.record_handler = original


@cache
def memory(function: str) -> int:
    """The function's memory size (MB) as the stack configures it."""
    return topology().function(function).memory_mb


def _accepted(reply: dict[str, Any]) -> None:
    if reply.get("statusCode") != 200:
        raise RuntimeError(f"ingest replied {reply}")


def _mapped(reply: dict[str, Any]) -> None:
    if reply.get("batchItemFailures"):
        raise RuntimeError(f"mapping failures: {reply}")


def batches_of(messages: list[dict[str, Any]], size: int = 10) -> list[dict[str, Any]]:
    """SQS event source batches of the SendMessage requests ingest made."""
    out = []
    for i in range(0, len(messages), size):
        chunk = messages[i:i + size]
        out.append(sqs_event([m["MessageBody"] for m in chunk], "intake",
                             [message_attributes_for_lambda(m.get("MessageAttributes") or {}) for m in chunk]))
    return out


def enqueue(fns: Functions, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One untimed pass of ingest (a warm-up) on a real SQS client: the messages it enqueued, in order."""
    sqs = FakeSQS()
    fns.use_queue(real_client("sqs", WireStub({"sqs": sqs})))
    with quiet_stdout():
        for event in events:
            _accepted(fns.post(event))
    return sqs.sent


# ---------------------------------------------------------------------------------------------
# CPU: chunks alternating the contenders, each chunk's best of the repeats
# ---------------------------------------------------------------------------------------------


@dataclass
class Contender:
    fn: Callable[[Any], Any]
    chunks: list[list[Any]]
    prepare: Callable[[], None]
    check: Callable[[Any], None]


def best_cpu(contenders: dict[str, Contender], repeats: int, stub: WireStub,
             reset: Callable[[], None] = lambda: None) -> dict[str, float]:
    """CPU seconds per contender over all its chunks (the stub's own CPU taken out): each chunk's best of
    `repeats`, summed. Contenders alternate chunk by chunk, so other load on this shared machine falls on
    all alike; `reset` runs before each repeat."""
    best = {name: [float("inf")] * len(c.chunks) for name, c in contenders.items()}
    rounds = max(len(c.chunks) for c in contenders.values())
    for _ in range(repeats):
        reset()
        for i in range(rounds):
            for name, c in contenders.items():
                if i >= len(c.chunks):
                    continue
                c.prepare()
                stub0 = stub.stub_cpu_s
                with quiet_stdout():
                    t0 = time.process_time()
                    replies = [c.fn(x) for x in c.chunks[i]]
                    elapsed = time.process_time() - t0
                for reply in replies:
                    c.check(reply)
                best[name][i] = min(best[name][i], elapsed - (stub.stub_cpu_s - stub0))
    return {name: sum(times) for name, times in best.items()}


def _chunked(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def measure_cpu(fns: Functions, events: dict[str, list[dict[str, Any]]], messages: dict[str, list[dict[str, Any]]],
                bases: dict[str, FakeDynamo], repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """(ingest s per request, mapping s per intake message) per channel, on real clients."""
    stub = WireStub({"sqs": FakeSQS()})
    stub.fakes["sqs"].keep = False
    queue = real_client("sqs", stub)
    ingest = {name: Contender(fns.post, _chunked(evs, 100), lambda: fns.use_queue(queue), _accepted)
              for name, evs in events.items()}
    totals = best_cpu(ingest, repeats, stub)
    ingest_s = {name: totals[name] / len(events[name]) for name in events}

    client = real_client("dynamodb", stub)
    state: dict[str, FakeDynamo] = {}

    def reset() -> None:
        state.update({name: fresh_copy(base) for name, base in bases.items()})

    def use(name: str) -> Callable[[], None]:
        def prepare() -> None:
            stub.fakes["dynamodb"] = state[name]
            fns.use_tables(client)
        return prepare

    mapping = {name: Contender(fns.map, _chunked(batches_of(msgs), 10), use(name), _mapped)
               for name, msgs in messages.items()}
    totals = best_cpu(mapping, repeats, stub, reset)
    return ingest_s, {name: totals[name] / len(messages[name]) for name in messages}


def _best_of(fn: Callable[[Any], Any], inputs: Sequence[Any], repeats: int = 3,
             reset: Callable[[], None] = lambda: None, stub: WireStub | None = None) -> float:
    """CPU seconds per input of fn over inputs, best of `repeats` (a stub's own CPU taken out)."""
    best = float("inf")
    for _ in range(repeats):
        reset()
        stub0 = stub.stub_cpu_s if stub else 0.0
        with quiet_stdout():
            t0 = time.process_time()
            for x in inputs:
                fn(x)
            elapsed = time.process_time() - t0
        best = min(best, elapsed - ((stub.stub_cpu_s - stub0) if stub else 0.0))
    return best / len(inputs)


def _verifications(provider: str, events: list[dict[str, Any]], channel_settings: Any) -> list[tuple[Any, ...]]:
    """(public key, signature, signed bytes) of each request: the RSA verification alone, as the channel makes it."""
    import base64

    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    out: list[tuple[Any, ...]] = []
    if provider == "wechatpay":
        from orderhub.channels.wechatpay import signed_message

        keys = channel_settings.options["platform_keys"]
        for e in events:
            h = e["headers"]
            out.append((load_pem_public_key(keys[h["wechatpay-serial"]].encode()),
                        base64.b64decode(h["wechatpay-signature"]),
                        signed_message(h["wechatpay-timestamp"], h["wechatpay-nonce"], e["body"].encode())))
    elif provider == "alipay":
        from orderhub.channels.alipay import public_keys, read_form, signed_content

        key = public_keys(tuple(channel_settings.secrets))[0]
        for e in events:
            form = read_form(e["body"].encode())
            out.append((key, base64.b64decode(form["sign"]), signed_content(form)))
    return out


def _verify(v: tuple[Any, ...]) -> None:
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.hashes import SHA256

    v[0].verify(v[1], v[2], PKCS1v15(), SHA256())


def measure_steps(fns: Functions, channel_name: str, events: list[dict[str, Any]], messages: list[dict[str, Any]],
                  base: FakeDynamo, records: list[Any]) -> dict[str, float]:
    """Each step of the callback's path alone, CPU s per callback (best of 3 over the sample)."""
    import json

    from orderhub import settings
    from orderhub.channels import get_channel
    from orderhub.channels.base import InboundRequest
    from orderhub.store.ledger import DynamoLedger, record_to_item

    channel = get_channel(channel_name)
    cs = settings.channel_config(channel_name)
    requests = [InboundRequest(channel_name, e["headers"], e["body"].encode(), "203.0.113.10") for e in events]
    steps: dict[str, float] = {}
    verifications = _verifications(channel_name, events, cs)
    if verifications:
        steps["RSA-SHA256 verify (2048-bit key)"] = _best_of(_verify, verifications)
    if channel_name == "wechatpay":
        from orderhub.channels.wechatpay import decrypt

        sealed = [json.loads(e["body"])["resource"] for e in events]
        steps["AES-256-GCM decrypt"] = _best_of(
            lambda r: decrypt(r["ciphertext"], r["nonce"], r["associated_data"], cs.secrets), sealed)
    steps["channel.authenticate (all checks + verify)"] = _best_of(lambda r: channel.authenticate(r, cs, fns.now),
                                                                   requests)
    steps["channel.parse (decrypt or form, validate)"] = _best_of(
        lambda r: channel.parse(r.body, r.headers, cs.field_rules), requests)
    fns.use_queue(FakeSQS())
    steps["webhook_ingest on in-process fakes (no botocore)"] = _best_of(fns.post, events)
    batches = batches_of(messages)
    state: dict[str, FakeDynamo] = {}

    def fresh_tables() -> None:
        state["fake"] = fresh_copy(base)
        fns.use_tables(state["fake"])

    per_batch = _best_of(fns.map, batches, reset=fresh_tables)
    steps["status_mapper on in-memory fakes (no botocore)"] = per_batch * len(batches) / len(messages)
    if records:
        steps["ledger item (record_to_item)"] = _best_of(record_to_item, records)
        stub = WireStub({})
        ledger = DynamoLedger(client=real_client("dynamodb", stub))

        def fresh_payments() -> None:
            stub.fakes["dynamodb"] = hub_dynamo()

        steps["ledger conditional PutItem, real client"] = _best_of(lambda r: ledger.book([r]), records,
                                                                    reset=fresh_payments, stub=stub)
    return steps


# ---------------------------------------------------------------------------------------------
# Write units per callback and US$ per million, ours and the anchor, billed like bench.cost
# ---------------------------------------------------------------------------------------------


def bill_ingest(fns: Functions, config: Any, callbacks: list[Callback]) -> tuple[Bill, list[dict[str, Any]]]:
    """HTTP API -> webhook_ingest -> SendMessage for every callback, billed; the messages enqueued, in order."""
    import json

    bill = Bill(events=len(callbacks))
    wire = Wire(config)
    sqs = FakeSQS(wire.rec)
    fns.use_queue(wire.client("sqs", sqs))
    wire.cold()
    with LogCapture() as cap:
        for callback in callbacks:
            n0 = len(wire.rec.calls)
            reply, cpu_s = timed(fns.post, callback.event, stub=wire.stub)
            _accepted(reply)
            bill.http_api += 1
            bill.egress_bytes["HTTP API replies"] += (len(reply.get("body", "")) + API_REPLY_HEADERS
                                                      + len(json.dumps(reply.get("headers", {}))))
            bill.invoke("webhook_ingest", memory("webhook_ingest"), cpu_s, wire.rec.calls[n0:])
    bill.log_bytes["webhook_ingest"] += cap.bytes
    wire.config_read(bill, "webhook_ingest")
    for c in wire.rec.calls:
        bill.sqs_requests["SendMessage intake"] += chunks64k(c.size)
    if len(sqs.sent) != len(callbacks):
        raise RuntimeError(f"{len(callbacks)} callbacks, {len(sqs.sent)} intake messages: not one each")
    return bill, sqs.sent


@dataclass
class Flow:
    """One design's mapping of the callbacks at one rate, billed, with each message's writes."""

    bill: Bill
    per_message: list[Counter]  # write units by kind of each intake message, in callback order
    calls_per_message: list[Counter]  # DynamoDB calls by operation and table, each message
    dynamo: FakeDynamo
    ledger: Any  # the ledger the mapper booked with (its client answers from `dynamo`)
    rebooked: Counter = field(default_factory=Counter)  # write units of booking every callback's records again
    rebooked_callbacks: int = 0
    rebooked_calls: Counter = field(default_factory=Counter)
    notes: dict[str, str] = field(default_factory=dict)


def run_mapping(fns: Functions, config: Any, ingest: Bill, messages: list[dict[str, Any]], base: FakeDynamo,
                traffic: Traffic, anchor: bool, wu: WriteUnits) -> Flow:
    """The intake queue -> status_mapper at the traffic's batch size, on real clients over recording fakes."""
    bill = copy.deepcopy(ingest)
    wire = Wire(config)
    dynamo = fresh_copy(base, wire.rec)
    fns.use_tables(wire.client("dynamodb", dynamo), anchor=anchor)
    trigger = next(t for t in topology().function("status_mapper").triggers if getattr(t, "queue", "") == "intake")
    bodies = [m["MessageBody"] for m in messages]
    attrs = [message_attributes_for_lambda(m.get("MessageAttributes") or {}) for m in messages]
    size = traffic.batch(traffic.events_per_s * len(bodies) / bill.events, trigger.batch_size,
                         trigger.max_batching_window_s)
    batches = [sqs_event(bodies[s:e], "intake", attrs[s:e]) for s, e in bill_sqs_batches(bill, "intake", bodies, size)]
    marks: list[int] = []
    with fns.marking(marks, wire.rec):
        run_batches(bill, wire, "status_mapper", fns.mapper.lambda_handler, batches, fns.mapper_ctx)
    calls = list(wire.rec.calls)
    if len(marks) != len(messages):
        raise RuntimeError(f"{len(messages)} messages, {len(marks)} mapped")
    wu.check(calls)
    bill_dynamodb(bill, [c for c in calls if c.op in _READS])
    bounds = list(zip(marks, [*marks[1:], len(calls)], strict=True))
    per_message = [wu.total(calls[a:b]) for a, b in bounds]
    for units in per_message:
        bill.wru.update(units)
    flow = Flow(bill, per_message, [_calls(calls[a:b]) for a, b in bounds], dynamo, fns.mapper._ledger)
    flow.notes = add_overheads(bill, traffic, [], 0)
    for key in [k for k in bill.extras if "(fixed)" in k or k.startswith("Secrets Manager")]:
        value = bill.extras.pop(key)
        if key.startswith("Secrets Manager"):
            bill.extras["Secrets Manager reads (per environment per minute)"] = value
    return flow


def _calls(calls: Sequence[Call]) -> Counter:
    """DynamoDB calls by operation and table."""
    return Counter(f"{c.op} {c.table.removeprefix('orderhub-local-')}" + ("" if c.ok else " (refused)") for c in calls)


def rebook(flow: Flow, wu: WriteUnits) -> None:
    """Book every callback's records once more with the flow's ledger: what a redelivery reaching the ledger
    (a crash between the ledger write and the order write) writes."""
    from orderhub.store.ledger import record_from_item

    groups: dict[tuple[str, str], list[Any]] = {}
    for item in flow.dynamo.tables[physical("payments")].values():
        record = record_from_item(item)
        groups.setdefault((record.source, record.source_event_id), []).append(record)
    recorder = Recorder()
    flow.dynamo.recorder = recorder
    with quiet_stdout():
        for records in groups.values():
            flow.ledger.book(records)
    flow.rebooked = wu.total(recorder.calls)
    flow.rebooked_calls = _calls(recorder.calls)
    flow.rebooked_callbacks = len(groups)


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


@dataclass
class Split:
    """Write units of a flow's messages, by provider and first delivery / resend."""

    messages: int = 0
    whole: Counter = field(default_factory=Counter)
    booking_messages: int = 0  # messages that wrote a ledger record
    records: int = 0


def split(flow: Flow, callbacks: list[Callback]) -> dict[tuple[str, bool], Split]:
    out: dict[tuple[str, bool], Split] = {}
    for callback, wu, calls in zip(callbacks, flow.per_message, flow.calls_per_message, strict=True):
        s = out.setdefault((callback.provider, callback.duplicate), Split())
        s.messages += 1
        s.whole.update(wu)
        booked = calls["PutItem payments"]
        s.records += booked
        s.booking_messages += booked > 0
    return out


def _per(counter: Counter, n: int, keep: Callable[[str], bool] = lambda k: True) -> float:
    return sum(v for k, v in counter.items() if keep(k)) / n if n else 0.0


def _by_kind(counter: Counter, n: int, keep: Callable[[str], bool] = lambda k: True) -> str:
    return ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(counter.items()) if keep(k)) if n else "-"


def cpu_figures(ingest_s: dict[str, float], mapping_s: dict[str, float], steps: dict[str, dict[str, float]],
                calls: dict[str, tuple[Counter, int]]) -> list[Figure]:
    """`calls`: per provider, the AWS calls its callbacks made on the real-client path and how many callbacks."""
    out = []
    a_in, a_map = ingest_s[ANCHOR_CHANNEL], mapping_s[ANCHOR_CHANNEL]
    label = f"{ANCHOR_CHANNEL}, same run"
    for p in PROVIDERS:
        i, m = ingest_s[p], mapping_s[p]
        s = steps.get(p, {})
        crypto = s.get("RSA-SHA256 verify (2048-bit key)", 0.0) + s.get("AES-256-GCM decrypt", 0.0)
        hub_only = s.get("webhook_ingest on in-process fakes (no botocore)", 0.0) + \
            s.get("status_mapper on in-memory fakes (no botocore)", 0.0)
        made, n = calls[p]
        out.append(Figure("payments", f"{p}: ingest CPU per callback (authenticate, parse, enqueue), real clients",
                          1 / i, "callbacks/s/core", anchor=1 / a_in, anchor_label=label, ratio=a_in / i,
                          note=f"{i * 1e6:.0f} µs vs {a_in * 1e6:.0f} µs for a mall webhook; " + _steps_note(s, "in")))
        out.append(Figure("payments", f"{p}: mapping CPU per callback (order, event log, ledger put), real clients",
                          1 / m, "callbacks/s/core", anchor=1 / a_map, anchor_label=label, ratio=a_map / m,
                          note=f"{m * 1e6:.0f} µs vs {a_map * 1e6:.0f} µs for a mall event; " + _steps_note(s, "map")))
        total, anchor_total = i + m, a_in + a_map
        over = (f"{total * 1e6:,.0f} µs a callback, the goal's {1e6 / GOAL_CALLBACKS_PER_S:,.0f} would allow; "
                if 1 / total < GOAL_CALLBACKS_PER_S else "")
        botocore = max(0.0, total - hub_only)
        what = "verify + decrypt + ledger write" if p == "wechatpay" else "verify + form + ledger write"
        # The path: the callback verified (and decrypted) and its ledger record written, the put on a
        # real client; the order's own update and event log are the whole path's, below.
        narrow = (s.get("channel.authenticate (all checks + verify)", 0.0)
                  + s.get("channel.parse (decrypt or form, validate)", 0.0)
                  + s.get("ledger conditional PutItem, real client", 0.0))
        if narrow:
            out.append(Figure(
                "payments", f"{p}: {what} (authenticate, parse, the ledger's conditional put on a real client)",
                1 / narrow, "callbacks/s/core", goal=f">= {GOAL_CALLBACKS_PER_S:,} callbacks/s/core",
                passed=1 / narrow >= GOAL_CALLBACKS_PER_S,
                note=f"{narrow * 1e6:.0f} µs: authenticate "
                     f"{s.get('channel.authenticate (all checks + verify)', 0.0) * 1e6:.0f} µs, parse "
                     f"{s.get('channel.parse (decrypt or form, validate)', 0.0) * 1e6:.0f} µs, the ledger put "
                     f"{s.get('ledger conditional PutItem, real client', 0.0) * 1e6:.0f} µs (botocore included)"))
        out.append(Figure(
            "payments", f"{p}: callback CPU, the whole path: ingest + mapping (order, log, ledger), real clients",
            1 / total, "callbacks/s/core", anchor=1 / anchor_total, anchor_label=label, ratio=anchor_total / total,
            note=over + f"the cryptography (RSA verify{' + AES-GCM' if p == 'wechatpay' else ''}) is "
                 f"{crypto * 1e6:.0f} µs ({crypto / total:.0%}); the hub's own code on in-process fakes "
                 f"{hub_only * 1e6:.0f} µs ({1 / hub_only:,.0f} callbacks/s/core); the rest, "
                 f"{botocore * 1e6:.0f} µs ({botocore / total:.0%}), is botocore building, signing and parsing "
                 f"{sum(made.values()) / n:.2g} AWS calls a callback ({_by_kind(made, n)}): "
                 f"{botocore / (sum(made.values()) / n) * 1e6:.0f} µs a call"))
    return out


def _steps_note(steps: dict[str, float], half: str) -> str:
    names = {"in": ("RSA-SHA256 verify (2048-bit key)", "AES-256-GCM decrypt", "channel.authenticate (all checks + "
                    "verify)", "channel.parse (decrypt or form, validate)",
                    "webhook_ingest on in-process fakes (no botocore)"),
             "map": ("status_mapper on in-memory fakes (no botocore)", "ledger item (record_to_item)",
                     "ledger conditional PutItem, real client")}[half]
    return "each step alone: " + "; ".join(f"{n} {steps[n] * 1e6:.0f} µs" for n in names if n in steps)


def wu_figures(ours: Flow, anchor: Flow, callbacks: list[Callback]) -> list[Figure]:
    o, a = split(ours, callbacks), split(anchor, callbacks)
    out = []
    for p in PROVIDERS:
        so, sa = o.get((p, False), Split()), a.get((p, False), Split())
        wu_o, wu_a = _per(so.whole, so.records, is_ledger), _per(sa.whole, sa.records, is_ledger)
        out.append(Figure(
            "payments", f"{p}: ledger write units per record booked (table + by-day index)", wu_o, "WU",
            anchor=wu_a, anchor_unit="WU", anchor_label="Powertools idempotency + put", ratio=wu_o / wu_a,
            goal=f"<= {GOAL_WU_PER_RECORD} WU", passed=wu_o <= GOAL_WU_PER_RECORD,
            note=f"{so.records:,} records from {so.booking_messages:,} of {so.messages:,} first deliveries; ours "
                 f"by kind per record: {_by_kind(so.whole, so.records, is_ledger)}; anchor: "
                 f"{_by_kind(sa.whole, sa.records, is_ledger)}"))
    first_o = [o[k] for k in o if not k[1]]
    first_a = [a[k] for k in a if not k[1]]
    dup_o = [o[k] for k in o if k[1]]
    dup_a = [a[k] for k in a if k[1]]

    def whole(parts: list[Split]) -> tuple[float, Counter, int]:
        total: Counter = Counter()
        n = 0
        for s in parts:
            total.update(s.whole)
            n += s.messages
        return _per(total, n), total, n

    (fo, fo_kinds, fn), (fa, fa_kinds, _) = whole(first_o), whole(first_a)
    (do, do_kinds, dn), (da, da_kinds, _) = whole(dup_o), whole(dup_a)
    per_provider = "; ".join(f"{p} ours {_per(o[(p, d)].whole, o[(p, d)].messages):.2f}, anchor "
                             f"{_per(a[(p, d)].whole, a[(p, d)].messages):.2f}"
                             for p in PROVIDERS for d in (False, True) if (p, d) in o and not d)
    out.append(Figure(
        "payments", "whole callback path write units, first delivery (event log + ledger + index + order)", fo, "WU",
        anchor=fa, anchor_unit="WU", anchor_label="Powertools idempotency + put", ratio=fo / fa,
        note=f"{fn:,} first deliveries ({per_provider}); ours by kind: {_by_kind(fo_kinds, fn)}; anchor: "
             f"{_by_kind(fa_kinds, fn)}"))
    out.append(Figure(
        "payments", "whole callback path write units, a resend (provider delivers it again)", do, "WU",
        anchor=da, anchor_unit="WU", anchor_label="Powertools idempotency + put", ratio=do / da if da else None,
        note=f"{dn:,} resends: the mapper reads the order and its event-log put is refused (the entry is there), so "
             f"neither ledger is reached; ours by kind: {_by_kind(do_kinds, dn)}; anchor: {_by_kind(da_kinds, dn)}"))
    ro, ra = _per(ours.rebooked, ours.rebooked_callbacks), _per(anchor.rebooked, anchor.rebooked_callbacks)
    out.append(Figure(
        "payments", "ledger write units per callback booked again (a redelivery that reaches the ledger)", ro, "WU",
        anchor=ra, anchor_unit="WU", anchor_label="Powertools idempotency + put", ratio=ro / ra if ra else None,
        note=f"every one of {ours.rebooked_callbacks:,} callbacks' records booked a second time, as after a crash "
             f"between the ledger write and the order write; ours (a refused conditional put per record, ALL_OLD "
             f"hands back the record held): {_by_kind(ours.rebooked, ours.rebooked_callbacks)}, calls "
             f"{_by_kind(ours.rebooked_calls, ours.rebooked_callbacks)}; anchor (the refused in-progress put hands "
             f"back the stored reply): {_by_kind(anchor.rebooked, anchor.rebooked_callbacks)}, calls "
             f"{_by_kind(anchor.rebooked_calls, anchor.rebooked_callbacks)}"))
    return out


def cost_lines(title: str, ours: Flow, anchor: Flow) -> list[str]:
    """The bill item by item, per callback and US$ per million, ours beside the anchor (as bench.cost prints)."""
    lines = [f"  -- {title}"]

    def row(label: str, a: str, b: str, c: str, d: str) -> None:
        lines.append(f"  {label:<62} {a:>12} {b:>10}   {c:>12} {d:>10}")

    def counts(b: Bill) -> dict[str, float]:
        return {"API Gateway HTTP API": b.http_api, "Lambda requests": sum(b.lambda_invocations.values()),
                "Lambda GB-s (arm64)": sum(b.lambda_gb_s.values()), "SQS requests": sum(b.sqs_requests.values()),
                "DynamoDB writes": sum(b.wru.values()), "DynamoDB reads": sum(b.rru.values())}

    o, a = ours.bill, anchor.bill
    po, pa = o.per_million(), a.per_million()
    co, ca = counts(o), counts(a)
    row("item", "ours /cb", "ours $/M", "anchor /cb", "anchor $/M")
    row("-" * 62, "-" * 12, "-" * 10, "-" * 12, "-" * 10)
    for key in po:
        if not po[key] and not pa.get(key):
            continue
        row(key, f"{co[key] / o.events:.4g}" if key in co else "-", f"${po[key]:.3f}",
            f"{ca[key] / a.events:.4g}" if key in ca else "-", f"${pa.get(key, 0):.3f}")
    row("TOTAL", "", f"${sum(po.values()):.2f}", "", f"${sum(pa.values()):.2f}")
    for name, flow in (("ours", ours), ("anchor", anchor)):
        b = flow.bill
        lines.append(f"  {name}: write units per callback by kind: " + _by_kind(b.wru, b.events))
        lines.append(f"  {name}: read units per callback: " + (_by_kind(b.rru, b.events) or "none"))
        lines.append(f"  {name}: Lambda invocations per callback / callbacks per invocation / median billed ms: "
                     + ", ".join(f"{fn} {n / b.events:.3f} / {b.batch_items.get(fn, n) / n:.1f} / "
                                 f"{sorted(b.lambda_ms[fn])[len(b.lambda_ms[fn]) // 2]} ms"
                                 for fn, n in b.lambda_invocations.items()))
        for key, how in flow.notes.items():
            if key in ("logs", "config", "egress"):  # the rest are the hub's fixed costs: bench.cost's
                lines.append(f"  {name}: {key}: {how.removesuffix('; 0 secrets stored')}")
    lines.append("")
    return lines


def total(flow: Flow) -> float:
    return sum(flow.bill.per_million().values())


def cost_figures(flows: dict[tuple[str, bool], Flow]) -> list[Figure]:
    out = []
    for traffic in (NORMAL, PEAK):
        o, a = flows[(traffic.name, False)], flows[(traffic.name, True)]
        items = sorted(o.bill.per_million().items(), key=lambda kv: -kv[1])
        out.append(Figure(
            "payments", f"US$ per million callbacks, at {traffic.name}", total(o), "$", anchor=total(a),
            anchor_unit="$", anchor_label="Powertools idempotency + put", ratio=total(o) / total(a),
            note="; ".join(f"{k} ${v:.3f}" for k, v in items if v) + "; anchor: " + "; ".join(
                f"{k} ${v:.3f}" for k, v in sorted(a.bill.per_million().items(), key=lambda kv: -kv[1]) if v)))
    return out


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run(callbacks: int = 600, mall: int = 600, repeats: int = 2) -> tuple[list[Figure], list[str]]:
    from bench.cpu import signed_requests
    from orderhub.store.ledger import record_from_item

    config = hub_config()
    install_config_stubs(config)
    now = datetime.now(UTC).replace(microsecond=0)
    fns = Functions(config, now)
    wu = WriteUnits()
    t0 = time.perf_counter()
    streams = {"wechatpay": wechatpay_stream(config, callbacks, now), "alipay": alipay_stream(config, callbacks, now)}
    mixed = interleaved(*streams.values())
    base = orders_table(mixed.orders, now)
    mall_events = signed_requests(config, mall, seed=29)
    made_s = time.perf_counter() - t0

    # Write units and cost first: ingest once over both providers' callbacks (also the warm-up), then the
    # mapper for each design at each rate.
    ingest_bill, messages = bill_ingest(fns, config, mixed.callbacks)
    flows: dict[tuple[str, bool], Flow] = {}
    for traffic in (NORMAL, PEAK):
        for anchor in (False, True):
            flows[(traffic.name, anchor)] = run_mapping(fns, config, ingest_bill, messages, base, traffic, anchor, wu)
    for anchor in (False, True):
        rebook(flows[(NORMAL.name, anchor)], wu)

    # CPU: each provider's callbacks and the mall's webhooks, alternating chunk by chunk.
    by_provider = {p: [m for c, m in zip(mixed.callbacks, messages, strict=True) if c.provider == p]
                   for p in PROVIDERS}
    events = {p: [c.event for c in streams[p].callbacks] for p in PROVIDERS} | {ANCHOR_CHANNEL: mall_events}
    msgs = {p: by_provider[p] for p in PROVIDERS} | {ANCHOR_CHANNEL: enqueue(fns, mall_events)}
    empty = with_idempotency_table(hub_dynamo())
    ingest_s, mapping_s = measure_cpu(fns, events, msgs, {"wechatpay": base, "alipay": base, "mall": empty},
                                      repeats)
    booked = [record_from_item(i) for i in flows[(NORMAL.name, False)].dynamo.tables[physical("payments")].values()]
    steps = {name: measure_steps(fns, name, events[name][:200], msgs[name][:200], base if name in PROVIDERS else empty,
                                 [r for r in booked if r.source == name][:200])
             for name in (*PROVIDERS, ANCHOR_CHANNEL)}

    # AWS calls of each provider's callbacks on the real-client path (the 10/s flow), and how many callbacks
    made: dict[str, tuple[Counter, int]] = {p: (Counter(), 0) for p in PROVIDERS}
    for callback, counted in zip(mixed.callbacks, ours_calls(flows[(NORMAL.name, False)]), strict=True):
        calls_made, n = made[callback.provider]
        calls_made.update(counted)
        made[callback.provider] = (calls_made, n + 1)
    figures = (cpu_figures(ingest_s, mapping_s, steps, made)
               + wu_figures(flows[(NORMAL.name, False)], flows[(NORMAL.name, True)], mixed.callbacks)
               + cost_figures(flows))
    details = [f"traffic: {s.distinct:,} distinct notifications + {len(s.callbacks) - s.distinct:,} resends of "
               f"{p} for {len(s.orders):,} mall orders; {mall:,} mall webhooks (the anchor); built and signed in "
               f"{made_s:.0f} s" for p, s in streams.items()]
    what = Counter(f"{c.provider} {c.reports}" for c in mixed.callbacks if not c.duplicate)
    details.append("notifications by what they report: " + ", ".join(f"{k} {v}" for k, v in sorted(what.items())))
    for name, s in steps.items():
        details.append(f"{name}: each step alone, per callback: "
                       + "; ".join(f"{k} {v * 1e6:.1f} µs" for k, v in s.items()))
    ours = flows[(NORMAL.name, False)]
    calls: Counter = Counter()
    for c in ours.calls_per_message:
        calls.update(c)
    details.append(f"ours: DynamoDB calls per callback (all {len(mixed.callbacks):,}): "
                   + _by_kind(calls, len(mixed.callbacks)))
    details += _item_sizes(ours.dynamo)
    for traffic in (NORMAL, PEAK):
        details += cost_lines(f"at {traffic.name} ({traffic.events_per_month / 1e6:.1f} M callbacks a month)",
                              flows[(traffic.name, False)], flows[(traffic.name, True)])
    return figures, details


def ours_calls(flow: Flow) -> list[Counter]:
    """The AWS calls of each callback: its SendMessage at ingest and the mapper's DynamoDB calls."""
    return [Counter({"SendMessage intake": 1}) + Counter({k.removesuffix(" (refused)"): v for k, v in c.items()})
            for c in flow.calls_per_message]


def _item_sizes(dynamo: FakeDynamo) -> list[str]:
    """Median and largest billed size of the items the callbacks wrote, by table and provider."""
    from orderhub.store.attributes import item_size_bytes
    from orderhub.store.ledger import index_entry

    def describe(sizes: list[int]) -> str:
        sizes = sorted(sizes)
        return f"median {sizes[len(sizes) // 2]} B, largest {sizes[-1]} B" if sizes else "none"

    lines = []
    payments = list(dynamo.tables[physical("payments")].values())
    log = dynamo.tables[physical("order-events")]
    for p in PROVIDERS:
        mine = [i for i in payments if i["record_id"]["S"].startswith(f"{p}:")]
        entries = [i for i in log.values() if i["channel"]["S"] == p]
        lines.append(f"{p}: ledger item {describe([item_size_bytes(i) for i in mine])}, its index entry "
                     f"{describe([item_size_bytes(index_entry(i)) for i in mine])}; payload stored "
                     f"{sum('pz' in i for i in mine)} compressed / {sum('p' in i for i in mine)} as text; "
                     f"event-log item {describe([item_size_bytes(i) for i in entries])}")
    orders = list(dynamo.tables[physical("orders")].values())  # the mall orders the callbacks paid
    lines.append(f"order items after the callbacks: {describe([item_size_bytes(i) for i in orders])}")
    return lines


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=600, help="distinct notifications per provider")
    parser.add_argument("--mall", type=int, default=600, help="mall webhooks of the anchor")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the figures here (bench.run_all)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    figures, details = run(args.callbacks, args.mall, args.repeats)
    for line in details:
        print(line if line.startswith("  ") else "  " + line)
    print_figures(f"bench.payments: money in per callback, WeChat Pay and Alipay beside the mall channel "
                  f"(took {time.perf_counter() - t0:.0f} s)", figures)
    dump_json(args.json, "payments", figures, details, time.perf_counter() - t0)
    return figures


if __name__ == "__main__":
    main()
