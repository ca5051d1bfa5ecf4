"""The hostile tier: signed requests of every shape a broken or hostile client can send, per push channel."""

from __future__ import annotations

import boto3
import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws
from unit.moto_tables import moto_order_store

# Deterministic: the same examples on every run, no deadline (a busy machine must not fail a test).
settings.register_profile("hostile", derandomize=True, deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def moto_store():
    """The mapping leg on moto's DynamoDB: it refuses what DynamoDB refuses (key sizes, text that is not UTF-8)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="ap-southeast-1")
        yield moto_order_store(client)
