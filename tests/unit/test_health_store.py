"""The channel-health table: per channel, what events bring that the hub does not know, counted per
unknown path / unmapped code; the same in DynamoDB (moto, which enforces the key-size limits) and in
memory. One event is at most one write, whatever it brings."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws
from unit.moto_tables import moto_channel_health

from orderhub.channels.drift import MAX_LISTED_PER_EVENT, MAX_TEXT_CHARS
from orderhub.store.attributes import item_size_bytes
from orderhub.store.health import ChannelHealth, InMemoryChannelHealth

T1, T2, T3 = "2026-11-19T01:00:00.000+00:00", "2026-11-19T02:00:00.000+00:00", "2026-11-19T03:00:00.000+00:00"
def dynamodb_health():
    return moto_channel_health(boto3.client("dynamodb", region_name="ap-southeast-1"))


@pytest.fixture(params=["dynamodb", "memory"])
def health(request):
    if request.param == "memory":
        yield InMemoryChannelHealth()
        return
    with mock_aws():
        yield dynamodb_health()[0]


@pytest.fixture
def on_moto():
    with mock_aws():
        yield dynamodb_health()


def writes_of(health) -> int:
    return len(health.client.writes()) if isinstance(health, ChannelHealth) else health.writes


def test_counts_first_and_last_seen_and_an_example_per_path_and_code(health):
    health.record("douyin", ("data.ext.tag", "data.ext.tag"), ("order_status=999",), "e1", T1)
    health.record("douyin", ("data.ext.tag",), (), "e2", T2)
    health.record("youzan", (), ("status=NEW",), "e3", T3)
    entries = {(e.channel, e.kind, e.key): e for e in health.entries()}
    tag = entries[("douyin", "drift", "data.ext.tag")]
    assert (tag.count, tag.first_seen, tag.last_seen, tag.last_event_id) == (2, T1, T2, "e2")  # once per event
    gap = entries[("douyin", "gap", "order_status=999")]
    assert (gap.count, gap.first_seen, gap.last_seen, gap.last_event_id) == (1, T1, T1, "e1")
    assert [e.key for e in health.entries("youzan")] == ["status=NEW"]
    assert [e.key for e in health.entries("douyin", kind="gap")] == ["order_status=999"]
    assert [e.entry for e in health.entries("douyin")] == ["drift#data.ext.tag", "gap#order_status=999"]


def test_an_event_without_drift_or_gaps_writes_nothing(health):
    health.record("mall", (), (), "e1", T1)
    assert health.entries() == []
    assert writes_of(health) == 0


def test_an_event_is_one_write_whatever_it_brings(health):
    # Given an event with many unknown paths and codes, and one with a few
    health.record("shopify", [f"note_attributes_{i}" for i in range(500)], [f"status={i}" for i in range(40)], "e1", T1)
    health.record("shopify", ["a", "b", "c"], ["status=x"], "e2", T2)
    # Then each was one write, and each listed path or code was counted once
    assert writes_of(health) == 2
    drift = health.entries("shopify", kind="drift")
    assert sum(1 for e in drift if e.count == 1) == len(drift) == MAX_LISTED_PER_EVENT + 3 + 1


def test_beyond_the_listed_paths_one_row_says_how_many_more_there_were(health):
    # Given two events with more unknown paths than an event lists, and one with fewer
    health.record("shopify", tuple(sorted(f"p{i:04}" for i in range(100))), (), "e1", T1)
    health.record("shopify", tuple(sorted(f"p{i:04}" for i in range(50))), (), "e2", T2)
    health.record("shopify", ("p0000",), [f"c{i:03}" for i in range(MAX_LISTED_PER_EVENT + 5)], "e3", T3)
    drift = health.entries("shopify", kind="drift")
    listed = [e for e in drift if not e.key.startswith("(")]
    (more,) = [e for e in drift if e.key.startswith("(")]
    # Then the first paths are counted each, and the rest in one row that tells the truth
    assert [e.key for e in listed] == [f"p{i:04}" for i in range(MAX_LISTED_PER_EVENT)]
    assert {e.key: e.count for e in listed}["p0000"] == 3
    assert more.key == f"(+{100 + 50 - 2 * MAX_LISTED_PER_EVENT} more unknown field paths: an event lists its first " \
                      f"{MAX_LISTED_PER_EVENT})"
    assert (more.count, more.first_seen, more.last_seen, more.last_event_id) == (2, T1, T2, "e2")
    (more_codes,) = [e for e in health.entries("shopify", kind="gap") if e.key.startswith("(")]
    assert more_codes.key.startswith("(+5 more unmapped codes") and more_codes.count == 1


def test_a_drift_list_that_ends_with_the_edge_note_counts_the_paths_the_note_counts(health):
    # The webhook ingest lists the first paths and a note (orderhub.channels.drift.drift_paths)
    listed = tuple(f"f{i:03}" for i in range(MAX_LISTED_PER_EVENT)) + ("+3968 more unknown field paths",)
    health.record("shopify", listed, (), "e1", T1)
    (more,) = [e for e in health.entries("shopify") if e.key.startswith("(")]
    assert more.key.startswith("(+3968 more unknown field paths")
    assert len(health.entries("shopify")) == MAX_LISTED_PER_EVENT + 1


def test_long_and_odd_paths_codes_and_ids_are_stored_bounded_and_readable(health):
    # Given what a hostile channel can make a path or code of: a 1,500-byte name (past the
    # 1,024-byte sort-key limit), lone surrogates, NUL, CJK, and two long names that share a start
    long_a, long_b = "x" * 1_500 + "a", "x" * 1_500 + "b"
    odd = ["\ud800", "a.\udfff[]", "\x00", "备注" * 300, "", long_a, long_b]
    health.record("shopify", odd, ["status=" + "\ud800" * 2_000], "evt-\ud800" + "9" * 300, T1)
    health.record("shopify", odd, [], "e2", T2)
    entries = health.entries("shopify")
    # Then every one is stored (one per name: the long ones apart), bounded, and UTF-8
    drift = [e for e in entries if e.kind == "drift"]
    assert len(drift) == len(odd) and all(e.count == 2 for e in drift)
    assert "\\ud800" in {e.key for e in drift} and "" in {e.key for e in drift}
    for e in entries:
        assert len(e.key) <= MAX_TEXT_CHARS and len(e.last_event_id) <= MAX_TEXT_CHARS
        (e.key + e.last_event_id).encode()
    longs = sorted(e.key for e in drift if e.key.startswith("xxx"))
    assert len(longs) == 2 and longs[0] != longs[1]


def test_the_write_reads_nothing_and_has_no_condition_so_concurrent_mappers_add_up(on_moto):
    # Two mappers (two stores on one table) recording the same drift in any interleaving
    first, recording = on_moto
    second = ChannelHealth(recording, "channel-health")
    for i in range(20):
        (first if i % 3 else second).record("jd", ["new_field"], ["orderState=X"], f"e{i}", T1 if i < 10 else T2)
    (field,) = first.entries("jd", kind="drift")
    assert field.count == 20 and (field.first_seen, field.last_seen) == (T1, T2)
    recorded = [call for call in recording.calls if call[0] != "query"]
    assert {name for name, _ in recorded} == {"update_item"}
    assert not any("ConditionExpression" in kwargs for _, kwargs in recorded)


def test_keys_are_within_dynamodbs_limits_whatever_the_channel_sends(on_moto):
    health, recording = on_moto
    health.record("c" * 3_000, ["p" * 5_000, "中" * 2_000], ["k" * 5_000], "e" * 5_000, T1)
    ((key,),) = [[kwargs["Key"]] for kwargs in recording.writes()]
    # DynamoDB's limits (moto enforces them too): partition key 2,048 bytes, sort key 1,024
    assert len(key["channel"]["S"].encode()) <= 2_048 and len(key["entry"]["S"].encode()) <= 1_024
    assert {e.kind for e in health.entries()} == {"drift", "gap"}


def test_counters_written_one_per_path_before_are_read_with_the_sets(on_moto):
    # Items of the earlier layout (one counter per path or code) still in the table
    health, recording = on_moto
    recording.put_item(TableName="channel-health", Item={
        "channel": {"S": "douyin"}, "entry": {"S": "drift#data.ext.tag"}, "count": {"N": "5"},
        "first_seen": {"S": T1}, "last_seen": {"S": T1}, "last_event_id": {"S": "old"}})
    health.record("douyin", ["data.ext.tag"], [], "new", T2)
    (tag,) = health.entries("douyin")
    assert (tag.key, tag.count, tag.first_seen, tag.last_seen, tag.last_event_id) == ("data.ext.tag", 6, T1, T2, "new")


def test_an_item_stays_far_below_dynamodbs_400_kb_whatever_the_event_brings(on_moto):
    # The widest event: every listed path and code at the stored length, each character four bytes
    health, recording = on_moto
    widest = ["😀" * 5_000 + str(i) for i in range(1_000)]
    health.record("shopify", widest, widest, "😀" * 128, T1)
    (item,) = recording.scan(TableName="channel-health")["Items"]
    assert item_size_bytes(item) < 64 * 1024  # a 1 KB write unit per started KB: bounded cost too
