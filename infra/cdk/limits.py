"""Fair limits: a throttle per API route and reserved concurrency, from the CDK context (cdk.json).

One stage-wide throttle let a flood of junk starve real channels and operators. Each push channel has its
own route (infra/topology.py) and so its own throttle; each operations route has one of its own; any other
path is API Gateway's 404 without a function call. Reserved concurrency keeps one function from taking
the account's whole pool from the others (and caps it).

The numbers are sized for a sales day (11.11, about 30x a normal day): docs/deploy.md shows the arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.topology import WEBHOOK_CHANNELS, Route

LIMITS_CONTEXT_KEY = "orderhub:limits"
# `-c orderhub:reserved-concurrency=off`: a new account (10 concurrent executions) cannot reserve any.
RESERVED_CONCURRENCY_CONTEXT_KEY = "orderhub:reserved-concurrency"
_OFF = {"off", "false", "0", "none"}


@dataclass(frozen=True)
class Throttle:
    rate_rps: float
    burst: int


@dataclass(frozen=True)
class Limits:
    webhooks: Mapping[str, Throttle]  # channel -> its route's throttle
    operations: Throttle  # each operations route
    reserved_concurrency: Mapping[str, int]  # function -> units it keeps (and may not exceed)
    # A route answering more than this share of its requests with a 5xx over one alarm period alarms.
    route_5xx_percent: float

    def throttle(self, route: Route) -> Throttle:
        if route.function == "webhook_ingest":
            return self.webhooks[route.path.rsplit("/", 1)[-1]]
        return self.operations

    @property
    def default(self) -> Throttle:
        """The stage default (routes without their own settings): the smallest of all."""
        return min((*self.webhooks.values(), self.operations), key=lambda t: t.rate_rps)

    @classmethod
    def from_context(cls, limits: Any, reserved_switch: Any = None) -> Limits:
        if not isinstance(limits, Mapping):
            raise ValueError(f"cdk.json context {LIMITS_CONTEXT_KEY!r} is missing or not an object")
        burst_s = float(limits.get("burst_seconds", 2))
        rates = limits.get("webhook_rps", {})
        missing = sorted(set(WEBHOOK_CHANNELS) - set(rates))
        unknown = sorted(set(rates) - set(WEBHOOK_CHANNELS))
        if missing or unknown:
            raise ValueError(f"{LIMITS_CONTEXT_KEY}.webhook_rps: every push channel needs a rate "
                             f"(missing {missing}, not push channels {unknown})")
        webhooks = {channel: _throttle(rates[channel], burst_s) for channel in WEBHOOK_CHANNELS}
        reserved = {} if str(reserved_switch).lower() in _OFF else {
            name: int(units) for name, units in limits.get("reserved_concurrency", {}).items() if int(units) > 0}
        return cls(webhooks=webhooks, operations=_throttle(limits.get("operations_rps", 10), burst_s),
                   reserved_concurrency=reserved, route_5xx_percent=float(limits.get("route_5xx_percent", 1)))


def _throttle(rate: Any, burst_s: float) -> Throttle:
    rate_rps = float(rate)
    if rate_rps <= 0:
        raise ValueError(f"{LIMITS_CONTEXT_KEY}: a rate must be positive, got {rate!r}")
    return Throttle(rate_rps=rate_rps, burst=max(1, round(rate_rps * burst_s)))
