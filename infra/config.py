"""The operator's configuration file (`ORDERHUB_CONFIG`, TOML) and where each value lives in AWS.

The file is read by the tools around the hub (local runtime, CDK app, CLI), never by a
Lambda function. Functions read the same values from SSM Parameter Store and Secrets
Manager under the stage's prefixes; `parameter_documents()` is the one place that says
which value goes where, so the local runtime and the deploy docs cannot drift apart.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from infra.topology import DEFAULT_BUSINESS_TZ, Subscriber

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "config" / "local.toml"


class FieldRulesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    drop: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)


class ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secrets: Annotated[list[str], Field(min_length=1)]
    timestamp_tolerance_s: Annotated[int, Field(gt=0, le=3600)] = 300
    allowed_ips: list[str] = Field(default_factory=list)
    # The public half of the credentials where a platform signs with both (Douyin app_key,
    # Youzan client_id, Taobao/JD/PDD app key).
    app_key: str = ""
    # Schema-drift answers (ING-7): {drop = [...], rename = {new = old}, ignore = [...]}.
    field_rules: FieldRulesConfig = Field(default_factory=lambda: FieldRulesConfig())
    # Channel-specific settings, documented in the channel's module (e.g. pull shops, gateway URL).
    options: dict[str, Any] = Field(default_factory=dict)
    # Channel-specific secrets beside the signing secrets (e.g. per-shop access tokens).
    secret_options: dict[str, Any] = Field(default_factory=dict)


class SubscriberConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")]
    endpoint: str
    signing_secret: Annotated[str, Field(min_length=16)]
    pattern: dict
    max_attempts: Annotated[int, Field(ge=3, le=20)] = 5
    backoff_seconds: Annotated[list[int], Field(min_length=1)] = Field(default_factory=lambda: [30, 120, 600, 1800])
    timeout_s: Annotated[int, Field(gt=0, le=25)] = 10

    def as_topology(self) -> Subscriber:
        return Subscriber(name=self.name, pattern=self.pattern, max_attempts=self.max_attempts,
                          timeout_s=self.timeout_s)


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")] = "local"
    business_timezone: str = DEFAULT_BUSINESS_TZ
    ops_token: Annotated[str, Field(min_length=16)]
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    subscribers: list[SubscriberConfig] = Field(default_factory=list)

    @field_validator("business_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        ZoneInfo(value)  # raises on an unknown zone
        return value

    @property
    def config_prefix(self) -> str:
        return f"/orderhub/{self.stage}"

    @property
    def secrets_prefix(self) -> str:
        return f"orderhub/{self.stage}"

    def topology_subscribers(self) -> tuple[Subscriber, ...]:
        return tuple(s.as_topology() for s in self.subscribers)

    def parameter_documents(self) -> tuple[dict[str, str], dict[str, str]]:
        """(SSM parameters, Secrets Manager secrets) as name -> string value."""
        params: dict[str, str] = {}
        secrets: dict[str, str] = {}
        for name, ch in self.channels.items():
            params[f"{self.config_prefix}/channels/{name}"] = json.dumps(
                {"timestamp_tolerance_s": ch.timestamp_tolerance_s, "allowed_ips": ch.allowed_ips,
                 "app_key": ch.app_key, "field_rules": ch.field_rules.model_dump(), "options": ch.options}
            )
            secrets[f"{self.secrets_prefix}/channels/{name}"] = json.dumps(
                {"secrets": ch.secrets, "options": ch.secret_options})
        for sub in self.subscribers:
            params[f"{self.config_prefix}/subscribers/{sub.name}"] = json.dumps(
                {"endpoint": sub.endpoint, "backoff_seconds": sub.backoff_seconds, "timeout_s": sub.timeout_s,
                 "max_attempts": sub.max_attempts}
            )
            secrets[f"{self.secrets_prefix}/subscribers/{sub.name}"] = json.dumps(
                {"signing_secret": sub.signing_secret}
            )
        secrets[f"{self.secrets_prefix}/ops-token"] = self.ops_token
        return params, secrets


def config_path() -> Path:
    return Path(os.environ.get("ORDERHUB_CONFIG", str(DEFAULT_CONFIG_PATH)))


def load_config(path: Path | None = None) -> HubConfig:
    path = path or config_path()
    with path.open("rb") as fh:
        return HubConfig.model_validate(tomllib.load(fh))
