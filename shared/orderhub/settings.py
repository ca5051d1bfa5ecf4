"""Function settings from the environment and hub configuration from SSM / Secrets Manager.

Environment variables are read when first needed and validated (a missing one fails with its
name, not a KeyError deep in a request). Configuration documents are cached for a short time:
a changed IP allow-list or a rotated secret takes effect within `CONFIG_MAX_AGE_S` without a
redeploy.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderhub.channels.base import ChannelSettings

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
    """Non-secret per-channel settings: timestamp tolerance, IP allow-list, app key, field rules, options."""
    return _parameter(f"{env('ORDERHUB_CONFIG_PREFIX')}/channels/{channel}")


_built: dict[str, tuple[float, ChannelSettings]] = {}


def channel_config(channel: str) -> ChannelSettings:
    """Everything a channel module needs, built once per `CONFIG_MAX_AGE_S` (the hot path reuses it)."""
    cached = _built.get(channel)
    now = time.monotonic()
    if cached is not None and now - cached[0] < CONFIG_MAX_AGE_S:
        return cached[1]
    from orderhub.channels.base import ChannelSettings, FieldRules

    document = channel_settings(channel)
    secret = json.loads(_secret(f"{env('ORDERHUB_SECRETS_PREFIX')}/channels/{channel}"))
    built = ChannelSettings(
        secrets=tuple(secret["secrets"]),
        timestamp_tolerance_s=int(document.get("timestamp_tolerance_s", 300)),
        allowed_ips=tuple(document.get("allowed_ips", ())),
        app_key=str(document.get("app_key", "")),
        field_rules=FieldRules.from_document(document.get("field_rules")),
        options={**document.get("options", {}), **secret.get("options", {})},
    )
    _built[channel] = (now, built)
    return built


def subscriber_settings(subscriber: str) -> dict[str, Any]:
    return _parameter(f"{env('ORDERHUB_CONFIG_PREFIX')}/subscribers/{subscriber}")


def subscriber_secrets(subscriber: str) -> dict[str, str]:
    """The subscriber's signing secret and, for a chat robot, its webhook URL (the URL holds its key)."""
    return json.loads(_secret(f"{env('ORDERHUB_SECRETS_PREFIX')}/subscribers/{subscriber}"))


def alerts_settings() -> dict[str, Any]:
    """Alert window, routes (team -> robots, SNS) and robot kinds: {window_s, default_route, routes, robots}."""
    return _parameter(f"{env('ORDERHUB_CONFIG_PREFIX')}/alerts/settings")


def alert_robots() -> dict[str, dict[str, str]]:
    """Robot name -> {webhook, secret}: the robots' URLs carry their keys."""
    return json.loads(_secret(f"{env('ORDERHUB_SECRETS_PREFIX')}/alerts/robots"))


def exceptions_settings() -> dict[str, Any]:
    """Exception rule thresholds and each type's owner, supervisor and SLA (infra/config.py ExceptionsConfig)."""
    return _parameter(f"{env('ORDERHUB_CONFIG_PREFIX')}/exceptions/settings")


def ops_token() -> str:
    return _secret(f"{env('ORDERHUB_SECRETS_PREFIX')}/ops-token")


def queue_urls() -> dict[str, str]:
    """Every queue's URL by declared name (DLQs included), from QUEUE_URLS."""
    return json.loads(env("QUEUE_URLS"))
