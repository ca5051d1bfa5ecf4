"""The order store's two tables on moto, keyed as the topology declares them, for tests that need DynamoDB's
own refusals (key sizes, text that is not UTF-8, conditions)."""

from __future__ import annotations

from typing import Any

from orderhub.store.health import ChannelHealth
from orderhub.store.orders import DynamoOrderStore

WRITES = {"update_item", "put_item", "batch_write_item", "transact_write_items", "delete_item"}


class RecordingClient:
    """A DynamoDB client, with every call it was asked to make kept in order."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return method(**kwargs)

        return call

    def writes(self) -> list[dict]:
        return [kwargs for name, kwargs in self.calls if name in WRITES]


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


def moto_channel_health(client: Any) -> tuple[ChannelHealth, RecordingClient]:
    """The channel-health table on `client` (inside `mock_aws`), and the recording client its store uses."""
    client.create_table(TableName="channel-health", BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "channel", "KeyType": "HASH"},
                                   {"AttributeName": "entry", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "channel", "AttributeType": "S"},
                                              {"AttributeName": "entry", "AttributeType": "S"}])
    recording = RecordingClient(client)
    return ChannelHealth(recording, "channel-health"), recording
