"""Which "now" the embedded AWS reads: the runtime's clock while it runs, and nothing stale after any test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import moto.core.utils as moto_utils
import moto.dynamodb.models.table as moto_table
import pytest

from infra.config import HubConfig
from infra.local import aws_clock
from infra.local.clock import ManualClock
from infra.local.runtime import LocalRuntime
from infra.topology import Table, Topology

START = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
LEAKED = datetime(2001, 1, 1)
TOPOLOGY = Topology(app="orderhub", tables=(Table("ledger", partition_key="pk", stream="NEW_AND_OLD_IMAGES",
                                                  point_in_time_recovery=False),),
                    queues=(), buckets=(), buses=(), topics=(), rules=(), functions=(), routes=(), schedules=(),
                    subscribers=())


def stream_times(runtime: LocalRuntime) -> list[datetime]:
    streams = boto3.client("dynamodbstreams", endpoint_url=runtime.endpoint_url, region_name=runtime.region)
    arn = runtime.resources.stream_arns["ledger"]
    out = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator)["Records"]
        out += [r["dynamodb"]["ApproximateCreationDateTime"] for r in records]
    return out


def test_a_clock_left_bound_inside_moto_by_an_earlier_test_does_not_reach_the_runtime(monkeypatch):
    # Given a moto module that kept a moved clock's reader (bound when it was imported under a patch)
    monkeypatch.setattr(moto_table, "utcnow", lambda: LEAKED)
    clock = ManualClock(START)
    with LocalRuntime(HubConfig(stage="itawsclock", ops_token="test-ops-token-0123456789"), port=0, clock=clock,
                      topology=TOPOLOGY, prewarm=False, timers_follow_clock=True) as runtime:
        # When an item is written, and again after the runtime's clock moved an hour
        ddb = boto3.client("dynamodb", endpoint_url=runtime.endpoint_url, region_name=runtime.region)
        ddb.put_item(TableName=runtime.resources.tables["ledger"], Item={"pk": {"S": "a"}})
        clock.advance(3600)
        ddb.put_item(TableName=runtime.resources.tables["ledger"], Item={"pk": {"S": "b"}})
        # Then the stream stamps each write with the runtime's clock
        first, second = stream_times(runtime)
    assert (first.astimezone(UTC).replace(microsecond=0), second.astimezone(UTC).replace(microsecond=0)) == (
        START, START + timedelta(hours=1))
    # And once it stopped, moto reads real time again, in that module too
    assert abs(moto_table.utcnow() - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)


def test_the_newest_runtime_following_its_clock_decides_and_stopping_gives_the_decision_back():
    real = moto_utils.utcnow
    older, newer = ManualClock(START), ManualClock(START + timedelta(days=1))
    aws_clock.follow("older", older)
    aws_clock.follow("newer", newer)
    try:
        assert moto_utils.utcnow().replace(microsecond=0) == newer.now().replace(tzinfo=None)
        aws_clock.release("newer")
        assert moto_utils.utcnow().replace(microsecond=0) == older.now().replace(tzinfo=None)
    finally:
        aws_clock.release("newer")
        aws_clock.release("older")
    assert moto_utils.utcnow is real


@pytest.mark.parametrize("reads", [2, 1000])
def test_aws_time_on_a_still_clock_never_repeats_an_instant(reads):
    # moto makes a message visible when now > visible_at: on a clock that does not move, AWS time still must
    read = aws_clock.AwsTime(ManualClock(START))
    instants = [read() for _ in range(reads)]
    assert instants == sorted(set(instants)) and instants[0] == START.replace(tzinfo=None)


def test_a_runtime_on_real_time_reads_real_time_whatever_moto_was_left_reading(monkeypatch):
    # Given moto's own reader left on a moved clock by an earlier patch that was never undone
    monkeypatch.setattr(moto_utils, "utcnow", lambda: LEAKED)
    with LocalRuntime(HubConfig(stage="itawsreal", ops_token="test-ops-token-0123456789"), port=0,
                      topology=TOPOLOGY, prewarm=False) as runtime:
        # When an item is written
        ddb = boto3.client("dynamodb", endpoint_url=runtime.endpoint_url, region_name=runtime.region)
        ddb.put_item(TableName=runtime.resources.tables["ledger"], Item={"pk": {"S": "a"}})
        # Then its stream record carries real time
        (written,) = stream_times(runtime)
    assert abs(written - datetime.now(UTC)) < timedelta(minutes=1)
