"""The status mapper's write path: log, then conditional order write; crash-safe and race-safe."""

from __future__ import annotations

import json

import pytest
from unit.mall_events import T0, created, mall_event, paid

from orderhub.clock import FixedClock
from orderhub.mapping import map_message
from orderhub.models.envelope import IntakeMessage
from orderhub.store.orders import ConflictError, InMemoryOrderStore


def message(raw: dict) -> IntakeMessage:
    return IntakeMessage.wrap("mall", "2026-11-21T01:00:00.000+00:00", "req-1", "198.51.100.1",
                              {"x-mall-timestamp": "1"}, json.dumps(raw).encode())


def test_a_first_event_creates_the_order_and_logs_it():
    store = InMemoryOrderStore()
    (result,) = map_message(message(created()), store, FixedClock(T0))
    assert result.outcome == "applied" and result.status_after == "PENDING_PAYMENT"
    (entry,) = store.list_events(result.order_id)
    assert entry.channel_event_id == "evt_M1_001" and entry.status_after == "PENDING_PAYMENT"
    assert json.loads(entry.raw_body)["event_id"] == "evt_M1_001"  # kept for replay


def test_a_redelivered_message_is_a_duplicate_and_writes_nothing():
    store = InMemoryOrderStore()
    map_message(message(created()), store, FixedClock(T0))
    before = dict(store.orders)
    (result,) = map_message(message(created()), store, FixedClock(T0))
    assert result.outcome == "duplicate"
    assert store.orders == before and len(store.events) == 1


def test_an_unmapped_code_is_logged_as_a_gap_and_the_order_keeps_its_status():
    store = InMemoryOrderStore()
    map_message(message(created()), store, FixedClock(T0))
    map_message(message(paid()), store, FixedClock(T0))
    (result,) = map_message(message(mall_event(7, "order.invoiced", 5)), store, FixedClock(T0))
    assert result.outcome == "unmapped"
    order = store.get_order(result.order_id)
    assert order.status.value == "PAID" and order.version == 2
    gap = [e for e in store.list_events(result.order_id) if e.outcome == "unmapped"]
    assert gap and "order.invoiced" in gap[0].note


def test_an_unmapped_first_event_does_not_create_an_order():
    store = InMemoryOrderStore()
    (result,) = map_message(message(mall_event(7, "order.invoiced", 5)), store, FixedClock(T0))
    assert result.outcome == "unmapped" and store.orders == {}


class CrashOnceAfterLogging(InMemoryOrderStore):
    """The function dies after the log write and before the order write, once."""

    def __init__(self):
        super().__init__()
        self.crashed = False

    def put_order(self, order, expected_version):
        if not self.crashed:
            self.crashed = True
            raise TimeoutError("function timed out")
        super().put_order(order, expected_version)


def test_a_crash_between_log_and_order_write_is_repaired_by_the_redelivery():
    store = CrashOnceAfterLogging()
    with pytest.raises(TimeoutError):
        map_message(message(created()), store, FixedClock(T0))
    assert store.orders == {} and len(store.events) == 1
    # When SQS redelivers the message
    (result,) = map_message(message(created()), store, FixedClock(T0))
    # Then the order is written once, and the log still holds the event once
    assert store.get_order(result.order_id).version == 1
    assert len(store.events) == 1


class LosesOneRace(InMemoryOrderStore):
    """Another event of the same order is written between our read and our write."""

    def __init__(self, rival_raw: dict):
        super().__init__()
        self.rival_raw = rival_raw

    def put_order(self, order, expected_version):
        if self.rival_raw is not None:
            rival, self.rival_raw = self.rival_raw, None
            map_message(message(rival), self, FixedClock(T0))
        super().put_order(order, expected_version)


def test_losing_a_race_merges_on_top_of_the_winner():
    store = LosesOneRace(rival_raw=paid())
    (result,) = map_message(message(created()), store, FixedClock(T0))
    order = store.get_order(result.order_id)
    assert order.status.value == "PAID" and order.total_amount == 25800 and order.version == 2


class AlwaysLoses(InMemoryOrderStore):
    def put_order(self, order, expected_version):
        raise ConflictError(order.order_id)


def test_endless_conflicts_fail_the_message_so_it_is_retried():
    with pytest.raises(ConflictError):
        map_message(message(created()), AlwaysLoses(), FixedClock(T0))


def test_an_event_parsed_here_with_a_time_outside_the_window_is_logged_refused_and_its_neighbours_apply():
    # Given a message the mapper parses itself (a replay, a pulled page, an imported file: nobody to
    # answer 400 to) holding two Douyin order messages, one dated in the year 2286
    def douyin_message(p_id: int, create_time: int) -> dict:
        data = {"p_id": p_id, "s_ids": [p_id + 1], "shop_id": 68715432, "biz": 2, "order_type": 0,
                "order_status": 1, "create_time": create_time}
        return {"tag": "100", "msg_id": f"{p_id}_100_1", "data": json.dumps(data)}

    now = T0.timestamp()
    body = json.dumps([douyin_message(6921345678901234567, 9_999_999_999),
                       douyin_message(6921345678901234999, int(now) - 60)]).encode()
    store = InMemoryOrderStore()
    pulled = IntakeMessage.wrap("douyin", "2026-11-21T01:00:00.000+00:00", "replay-1", "", {}, body)
    # When it is mapped
    far, near = map_message(pulled, store, FixedClock(T0))
    # Then the far-future event is logged with the reason and changes nothing; the other one applies
    assert far.outcome == "refused" and far.status_after is None and store.get_order(far.order_id) is None
    (entry,) = store.list_events(far.order_id)
    assert entry.outcome == "refused" and "ahead of the hub clock" in entry.note
    assert near.outcome == "applied" and store.get_order(near.order_id) is not None
    # And a real event of the refused order, later, is not held back by it
    real = IntakeMessage.wrap("douyin", "2026-11-21T01:05:00.000+00:00", "replay-2", "", {},
                              json.dumps([douyin_message(6921345678901234567, int(now) - 30)]).encode())
    (applied,) = map_message(real, store, FixedClock(T0))
    assert applied.outcome == "applied" and store.get_order(applied.order_id).status.value == "PENDING_PAYMENT"
