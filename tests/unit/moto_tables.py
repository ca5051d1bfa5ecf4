"""The order store's two tables on moto, keyed as the topology declares them, for tests that need DynamoDB's
own refusals (key sizes, text that is not UTF-8, conditions)."""

from __future__ import annotations

from typing import Any

from orderhub.store.orders import DynamoOrderStore


def create_order_tables(client: Any, orders: str = "orders", events: str = "order-events") -> None:
    client.create_table(TableName=orders, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}])
    client.create_table(TableName=events, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"},
                                   {"AttributeName": "event_key", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"},
                                              {"AttributeName": "event_key", "AttributeType": "S"}])


def moto_order_store(client: Any) -> DynamoOrderStore:
    """A store on fresh tables of `client` (a boto3 DynamoDB client inside `mock_aws`)."""
    create_order_tables(client)
    return DynamoOrderStore(client, "orders", "order-events")
