"""What operators do with exceptions: lists by deadline with the countdown, acknowledge once, resolve once
with a note; and the wiring the code relies on (index name, lean handler imports)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError
from unit.exception_builders import at, iso

from infra.topology import EXCEPTIONS_TABLE, build_topology
from orderhub.exceptions import handling
from orderhub.exceptions.model import (
    RULE_TYPE,
    ExceptionNotFound,
    ExceptionRecord,
    ExceptionState,
    ExceptionType,
    Rule,
    WrongState,
    compact_instant,
)
from orderhub.store.exceptions import BY_STATE_INDEX, MemoryExceptionStore


def raise_one(store: MemoryExceptionStore, order_id: str, rule: Rule, deadline: float) -> ExceptionRecord:
    record = ExceptionRecord(
        order_id=order_id, exception_key=f"{rule.value}.{compact_instant(iso(0))}", channel="mall",
        channel_order_id=order_id.upper(), type=RULE_TYPE[rule], rule=rule, owner="warehouse",
        supervisor="supervisors", since=iso(0), due_at=iso(0), raised_at=iso(0), sla_deadline=iso(deadline))
    assert store.create(record)
    return record


@pytest.fixture
def store() -> MemoryExceptionStore:
    store = MemoryExceptionStore()
    raise_one(store, "oh_late", Rule.NOT_SHIPPED, 60)
    raise_one(store, "oh_soon", Rule.PAYMENT_UNCONFIRMED, 120)
    raise_one(store, "oh_later", Rule.NO_OUTBOUND, 600)
    return store


def ids(listing: handling.ExceptionList) -> list[str]:
    return [e.order_id for e in listing.exceptions]


def test_the_default_list_is_every_unresolved_exception_nearest_deadline_first_with_its_countdown(store):
    store.acknowledge("oh_soon", f"payment_unconfirmed.{compact_instant(iso(0))}", "li.wei", iso(10))
    listing = handling.list_exceptions(store, handling.ListQuery(), at(90))
    assert ids(listing) == ["oh_late", "oh_soon", "oh_later"] and not listing.truncated
    late, soon, _ = listing.exceptions
    assert (late.sla_remaining_s, late.overdue) == (-30 * 60, True)
    assert (soon.sla_remaining_s, soon.overdue, soon.state) == (30 * 60, False, ExceptionState.ACKNOWLEDGED)
    assert late.exception_id == f"oh_late~not_shipped.{compact_instant(iso(0))}"


def test_lists_filter_by_state_and_type_reverse_and_say_when_they_are_cut(store):
    assert ids(handling.list_exceptions(store, handling.ListQuery(type=ExceptionType.LOGISTICS), at(0))) == \
        ["oh_late", "oh_later"]
    assert ids(handling.list_exceptions(store, handling.ListQuery(order="latest"), at(0))) == \
        ["oh_later", "oh_soon", "oh_late"]
    cut = handling.list_exceptions(store, handling.ListQuery(limit=2), at(0))
    assert ids(cut) == ["oh_late", "oh_soon"] and cut.truncated
    assert handling.list_exceptions(store, handling.ListQuery(state="resolved"), at(0)).count == 0


def test_acknowledge_once_then_resolve_once_with_a_note(store):
    late = next(r for r in store.items.values() if r.order_id == "oh_late")
    acked = handling.acknowledge(store, late.exception_id, handling.AcknowledgeBody(by=" li.wei "), at(5))
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == (ExceptionState.ACKNOWLEDGED, "li.wei",
                                                                          iso(5))
    with pytest.raises(WrongState):
        handling.acknowledge(store, late.exception_id, handling.AcknowledgeBody(by="zhang.min"), at(6))
    body = handling.ResolveBody(by="li.wei", note="parcel found on the packing table, shipped")
    done = handling.resolve(store, late.exception_id, body, at(7))
    assert (done.state, done.resolution_note, done.resolved_at) == (ExceptionState.RESOLVED, body.note, iso(7))
    with pytest.raises(WrongState) as refused:
        handling.resolve(store, late.exception_id, body, at(8))
    assert refused.value.record.resolved_at == iso(7)
    assert ids(handling.list_exceptions(store, handling.ListQuery(state="resolved"), at(9))) == ["oh_late"]


@pytest.mark.parametrize("exception_id", ["nope", "oh_late~not_shipped.00000000T000000000Z", "oh_late~x/../y"])
def test_unknown_or_malformed_ids_are_not_found(store, exception_id):
    with pytest.raises(ExceptionNotFound):
        handling.find(store, exception_id)


@pytest.mark.parametrize("model, body", [
    (handling.AcknowledgeBody, {}), (handling.AcknowledgeBody, {"by": "  "}),
    (handling.AcknowledgeBody, {"by": "li", "extra": 1}), (handling.ResolveBody, {"by": "li.wei"}),
    (handling.ResolveBody, {"by": "li.wei", "note": ""}), (handling.ResolveBody, {"by": "x" * 65, "note": "n"}),
])
def test_bad_bodies_are_refused(model, body):
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps(body))


def test_the_state_index_is_the_one_the_topology_declares():
    table = next(t for t in build_topology().tables if t.name == EXCEPTIONS_TABLE)
    (index,) = table.indexes
    assert (index.name, index.partition_key, index.sort_key) == (BY_STATE_INDEX, "state", "sla_deadline")
    assert (table.partition_key, table.sort_key) == ("order_id", "exception_key")


@pytest.mark.parametrize("handler", ["sla_watchdog", "exceptions_api"])
def test_importing_the_handlers_loads_no_aws_sdk(handler):
    heavy = ["boto3", "botocore.client", "aws_xray_sdk", "aws_lambda_powertools.utilities.parser.models"]
    code = (f"import sys, json; import functions.{handler}.handler; "
            f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": "shared:.", "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []


class FlakyDynamo:
    """Answers BatchWriteItem with part of the items unprocessed, `throttled` times."""

    def __init__(self, throttled: int) -> None:
        self.throttled = throttled
        self.requests: list[list[dict]] = []

    def batch_write_item(self, RequestItems: dict) -> dict:  # noqa: N803 - boto3's parameter name
        ((table, requests),) = RequestItems.items()
        self.requests.append(requests)
        if self.throttled:
            self.throttled -= 1
            return {"UnprocessedItems": {table: requests[:1]}}
        return {"UnprocessedItems": {}}


def timers(n: int):
    from orderhub.exceptions.model import Timer

    return [(at(0), Timer(f"oh_{i:03d}", Rule.NOT_SHIPPED, iso(120))) for i in range(n)]


def test_timers_are_written_25_a_request_each_key_once_and_unprocessed_ones_again():
    from orderhub.store.sla_timers import DynamoTimerStore

    client, pauses = FlakyDynamo(throttled=2), []
    store = DynamoTimerStore(client, table="t", sleep=pauses.append)
    placed = timers(30)
    assert store.put(placed + placed[:5]) == 30  # the same timer twice in one call: one item
    sizes = [len(r) for r in client.requests]
    assert sizes == [25, 1, 1, 5]  # the first chunk's unprocessed item retried twice, then the rest
    keys = [(r["PutRequest"]["Item"]["slot"]["S"], r["PutRequest"]["Item"]["timer_key"]["S"])
            for r in client.requests[0]]
    assert len(set(keys)) == len(keys)
    assert pauses == [0.1, 0.2]  # backing off between attempts


def test_timers_still_unprocessed_after_the_retries_fail_the_batch():
    from orderhub.store.sla_timers import DynamoTimerStore, TimersNotWritten

    with pytest.raises(TimersNotWritten):
        DynamoTimerStore(FlakyDynamo(throttled=99), table="t", retries=3, sleep=lambda s: None).put(timers(2))
