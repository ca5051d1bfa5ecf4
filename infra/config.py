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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")]
RobotKind = Literal["wecom", "dingtalk"]


class SubscriberConfig(BaseModel):
    """A downstream system (kind "webhook": a signed JSON POST), or a chat robot that tells people
    about chosen order changes (kind "wecom" / "dingtalk": a markdown message to the group)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Name
    kind: Literal["webhook"] | RobotKind = "webhook"
    # webhook: the receiver's URL; wecom / dingtalk: the robot's webhook URL (it holds the robot's key).
    endpoint: str
    # webhook: the HMAC key of X-OrderHub-Signature; dingtalk: the robot's signing secret (SEC...);
    # wecom: none (the key in the URL is the credential).
    signing_secret: str = ""
    pattern: dict
    max_attempts: Annotated[int, Field(ge=3, le=20)] = 5
    backoff_seconds: Annotated[list[int], Field(min_length=1)] = Field(default_factory=lambda: [30, 120, 600, 1800])
    # Seconds to wait for the receiver: to connect, and then for its answer.
    connect_timeout_s: Annotated[float, Field(gt=0, le=10)] = 3
    timeout_s: Annotated[int, Field(gt=0, le=25)] = 10

    @model_validator(mode="after")
    def _secret_for_kind(self) -> SubscriberConfig:
        if self.kind == "webhook" and len(self.signing_secret) < 16:
            raise ValueError(f"subscriber {self.name}: a webhook subscriber needs a signing_secret of 16+ characters")
        if self.kind == "dingtalk" and not self.signing_secret:
            raise ValueError(f"subscriber {self.name}: a DingTalk robot needs its signing secret (SEC...)")
        return self

    def as_topology(self) -> Subscriber:
        return Subscriber(name=self.name, pattern=self.pattern, max_attempts=self.max_attempts,
                          timeout_s=self.timeout_s)


class RobotConfig(BaseModel):
    """A WeCom (企业微信) or DingTalk (钉钉) group robot that alerts are posted to."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: RobotKind
    # The robot's webhook URL as the group settings show it (it carries the robot's key: a secret).
    webhook: Annotated[str, Field(pattern=r"^https?://")]
    # DingTalk robots with "加签" security: the signing secret (SEC...). WeCom: unused.
    secret: str = ""

    @model_validator(mode="after")
    def _dingtalk_signs(self) -> RobotConfig:
        if self.kind == "dingtalk" and not self.secret:
            raise ValueError(f"robot {self.name}: a DingTalk robot needs its signing secret (SEC...)")
        return self


class AlertRoute(BaseModel):
    """Who hears an alert routed to this name (a team, a supervisor, the people on duty)."""

    model_config = ConfigDict(extra="forbid")

    robots: list[Name] = Field(default_factory=list)
    # Also publish it on the stage's alarm topic (mail / SMS subscriptions).
    sns: bool = True


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # One alert per problem per window (the count of occurrences travels with it).
    window_s: Annotated[int, Field(ge=60, le=86_400)] = 300
    default_route: Name = "ops"
    routes: dict[Name, AlertRoute] = Field(default_factory=lambda: {"ops": AlertRoute()})
    robots: list[RobotConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _routes_name_robots(self) -> AlertsConfig:
        robots = {r.name for r in self.robots}
        if len(robots) != len(self.robots):
            raise ValueError("alerts.robots: names must be unique")
        for route, spec in self.routes.items():
            unknown = set(spec.robots) - robots
            if unknown:
                raise ValueError(f"alerts.routes.{route}: unknown robots {sorted(unknown)}")
        if self.default_route not in self.routes:
            raise ValueError(f"alerts.default_route {self.default_route!r} is not one of alerts.routes")
        return self


ExceptionType = Literal["payment", "logistics", "product", "risk"]


class ExceptionTypeConfig(BaseModel):
    """Who owns one type of exception, how long they have to close it, and who hears of a breach."""

    model_config = ConfigDict(extra="forbid")

    owner: Name  # an alert route: the owning team
    supervisor: Name  # an alert route: told when the SLA is breached
    sla_minutes: Annotated[int, Field(ge=5, le=43_200)]


def _default_exception_types() -> dict[ExceptionType, ExceptionTypeConfig]:
    return {
        "payment": ExceptionTypeConfig(owner="ops", supervisor="ops", sla_minutes=120),
        "logistics": ExceptionTypeConfig(owner="ops", supervisor="ops", sla_minutes=72 * 60),
        "product": ExceptionTypeConfig(owner="ops", supervisor="ops", sla_minutes=72 * 60),
        "risk": ExceptionTypeConfig(owner="ops", supervisor="ops", sla_minutes=72 * 60),
    }


class ExceptionsConfig(BaseModel):
    """Detection thresholds of the exception rules (EXC-1) and each type's owner and SLA (EXC-2)."""

    model_config = ConfigDict(extra="forbid")

    # payment: reported paid, yet no confirmed payment in the payment voucher ledger this long after the
    # payment (the provider's callback never came); also how long a refund may wait for its payment.
    payment_unconfirmed_after_min: Annotated[int, Field(ge=1, le=10_080)] = 30
    # logistics: paid and not shipped (physically) this long after the payment.
    not_shipped_after_min: Annotated[int, Field(ge=1, le=10_080)] = 120
    # logistics: shipping requested on the channel, and no physical outbound this long after.
    no_outbound_after_min: Annotated[int, Field(ge=1, le=10_080)] = 240
    # product: SKUs the merchant sells. An order line with any other SKU is an exception;
    # empty: the rule is off (no catalogue configured).
    known_skus: list[str] = Field(default_factory=list)
    types: dict[ExceptionType, ExceptionTypeConfig] = Field(default_factory=_default_exception_types)

    @model_validator(mode="after")
    def _every_type(self) -> ExceptionsConfig:
        missing = set(_default_exception_types()) - set(self.types)
        if missing:
            raise ValueError(f"exceptions.types: missing {sorted(missing)}")
        return self


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")] = "local"
    business_timezone: str = DEFAULT_BUSINESS_TZ
    ops_token: Annotated[str, Field(min_length=16)]
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    subscribers: list[SubscriberConfig] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=lambda: AlertsConfig())
    exceptions: ExceptionsConfig = Field(default_factory=lambda: ExceptionsConfig())

    @model_validator(mode="after")
    def _exception_owners_are_routes(self) -> HubConfig:
        for kind, spec in self.exceptions.types.items():
            for role in ("owner", "supervisor"):
                if getattr(spec, role) not in self.alerts.routes:
                    raise ValueError(f"exceptions.types.{kind}.{role} {getattr(spec, role)!r} is not one of "
                                     "alerts.routes")
        return self

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

    def provider_confirmed(self) -> str:
        """The channels whose money only WeChat Pay, Alipay (or finance) confirm: each configured payment
        provider's `options.orders_channel` (default `mall`), comma-separated; "" when none is configured
        (a shop without them books its own word as money, class online)."""
        from infra.topology import PAYMENT_PROVIDERS

        return ",".join(sorted({str(self.channels[p].options.get("orders_channel", "mall"))
                                for p in PAYMENT_PROVIDERS if p in self.channels}))

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
            # A robot's URL holds its key, so it is a secret; a receiver's URL is not.
            robot = sub.kind != "webhook"
            params[f"{self.config_prefix}/subscribers/{sub.name}"] = json.dumps(
                {"kind": sub.kind, "endpoint": "" if robot else sub.endpoint, "backoff_seconds": sub.backoff_seconds,
                 "timeout_s": sub.timeout_s, "connect_timeout_s": sub.connect_timeout_s,
                 "max_attempts": sub.max_attempts}
            )
            secrets[f"{self.secrets_prefix}/subscribers/{sub.name}"] = json.dumps(
                {"signing_secret": sub.signing_secret, **({"endpoint": sub.endpoint} if robot else {})}
            )
        alerts = self.alerts
        params[f"{self.config_prefix}/alerts/settings"] = json.dumps(
            {"window_s": alerts.window_s, "default_route": alerts.default_route,
             "routes": {name: route.model_dump() for name, route in alerts.routes.items()},
             "robots": {robot.name: robot.kind for robot in alerts.robots}})
        secrets[f"{self.secrets_prefix}/alerts/robots"] = json.dumps(
            {robot.name: {"webhook": robot.webhook, "secret": robot.secret} for robot in alerts.robots})
        params[f"{self.config_prefix}/exceptions/settings"] = self.exceptions.model_dump_json()
        secrets[f"{self.secrets_prefix}/ops-token"] = self.ops_token
        return params, secrets


def config_path() -> Path:
    return Path(os.environ.get("ORDERHUB_CONFIG", str(DEFAULT_CONFIG_PATH)))


def load_config(path: Path | None = None) -> HubConfig:
    path = path or config_path()
    with path.open("rb") as fh:
        return HubConfig.model_validate(tomllib.load(fh))
