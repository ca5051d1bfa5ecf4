"""boto3 clients, created on first use and reused across invocations.

boto3 is imported here and only when a client is first asked for: the import alone costs more
than every other import of a handler, and the parsing/validation path never needs it.
AWS_ENDPOINT_URL (honoured by botocore itself) points the same code at the local runtime.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        config=Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=2,
            read_timeout=5,
            tcp_keepalive=True,
        ),
    )


def reset_clients() -> None:
    """Forget cached clients (tests that switch endpoints or credentials)."""
    client.cache_clear()
