"""The channel-health table: one counter item per unknown path / unmapped code, the same in DynamoDB and in memory."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from orderhub.store.health import ChannelHealth, InMemoryChannelHealth

T1, T2, T3 = "2026-11-19T01:00:00.000+00:00", "2026-11-19T02:00:00.000+00:00", "2026-11-19T03:00:00.000+00:00"


@pytest.fixture(params=["dynamodb", "memory"])
def health(request):
    if request.param == "memory":
        yield InMemoryChannelHealth()
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="ap-southeast-1")
        client.create_table(TableName="channel-health", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "channel", "KeyType": "HASH"},
                                       {"AttributeName": "entry", "KeyType": "RANGE"}],
                            AttributeDefinitions=[{"AttributeName": "channel", "AttributeType": "S"},
                                                  {"AttributeName": "entry", "AttributeType": "S"}])
        yield ChannelHealth(client, "channel-health")


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
