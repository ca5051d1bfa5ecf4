"""DynamoDB access: the only place in the hub that builds DynamoDB requests."""

from typing import Any


class DynamoBacked:
    """What every DynamoDB store shares: the client it was given (tests, operator tools), else the
    process's own, created on first use (`orderhub.aws.client`, cached there and reset with the
    other clients), so importing a store never loads boto3."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is not None:
            return self._client
        from orderhub.aws import client

        return client("dynamodb")
