"""DynamoDB access: the only place in the hub that builds DynamoDB requests."""

from typing import Any

from orderhub.settings import env


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


class DynamoTable(DynamoBacked):
    """A store of one table: the name it was given, else the one in its function's environment."""

    TABLE_ENV = ""  # e.g. "ALERTS_TABLE"

    def __init__(self, client: Any = None, table: str | None = None) -> None:
        super().__init__(client)
        self._table = table

    @property
    def table(self) -> str:
        return self._table or env(self.TABLE_ENV)


def is_condition_failure(exc: Exception) -> bool:
    """A conditional write DynamoDB refused (ConditionalCheckFailedException): the answer, not an error."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
