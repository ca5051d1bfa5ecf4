"""The hostile tier: signed requests of every shape a broken or hostile client can send, per push channel."""

from __future__ import annotations

import boto3
import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws

from orderhub.store.orders import DynamoOrderStore

# Deterministic: the same examples on every run, no deadline (a busy machine must not fail a test).
settings.register_profile("hostile", derandomize=True, deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def moto_store():
    """The mapping leg on moto's DynamoDB: it refuses what DynamoDB refuses (key sizes, text that is not UTF-8)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="ap-southeast-1")
        client.create_table(TableName="orders", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}])
        client.create_table(TableName="order-events", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"},
                                       {"AttributeName": "event_key", "KeyType": "RANGE"}],
                            AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"},
                                                  {"AttributeName": "event_key", "AttributeType": "S"}])
        yield DynamoOrderStore(client, "orders", "order-events")
