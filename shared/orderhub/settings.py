"""Function settings from the environment and hub configuration from SSM / Secrets Manager.

Environment variables are read when first needed and validated (a missing one fails with its
name, not a KeyError deep in a request). Configuration documents are cached for a short time:
a changed IP allow-list or a rotated secret takes effect within `CONFIG_MAX_AGE_S` without a
redeploy.
"""

from __future__ import annotations

import json
import os
from typing import Any

CONFIG_MAX_AGE_S = 60


class SettingsError(RuntimeError):
    pass


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


def business_tz() -> str:
    return os.environ.get("ORDERHUB_BUSINESS_TZ", "Asia/Shanghai")


def _parameter(name: str) -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_parameter(name, transform="json", max_age=CONFIG_MAX_AGE_S)


def _secret(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(name, max_age=CONFIG_MAX_AGE_S)


def channel_settings(channel: str) -> dict[str, Any]:
    """Non-secret per-channel settings: timestamp tolerance, IP allow-list."""
    return _parameter(f"{env('ORDERHUB_CONFIG_PREFIX')}/channels/{channel}")


def channel_secrets(channel: str) -> list[str]:
    """The channel's signing secrets, current first (more than one during a rotation)."""
    document = json.loads(_secret(f"{env('ORDERHUB_SECRETS_PREFIX')}/channels/{channel}"))
    return list(document["secrets"])


def subscriber_settings(subscriber: str) -> dict[str, Any]:
    return _parameter(f"{env('ORDERHUB_CONFIG_PREFIX')}/subscribers/{subscriber}")


def subscriber_secret(subscriber: str) -> str:
    document = json.loads(_secret(f"{env('ORDERHUB_SECRETS_PREFIX')}/subscribers/{subscriber}"))
    return str(document["signing_secret"])


def ops_token() -> str:
    return _secret(f"{env('ORDERHUB_SECRETS_PREFIX')}/ops-token")


def queue_urls() -> dict[str, str]:
    """Every queue's URL by declared name (DLQs included), from QUEUE_URLS."""
    return json.loads(env("QUEUE_URLS"))
