"""Reliability tier: scenarios of loss and duplication, each checked and counted (tests/reliability/checker.py).

`world` is a fresh hub per test: moto (in process) provisioned from the topology, the real
handlers with their environment, the downstream receiver for the webhook subscribers, AWS's
clock virtual and the fault injector installed (rate 0 until a scenario raises it).
The counts of every scenario are printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from infra.config import HubConfig, load_config
from infra.downstream import DownstreamReceiver, Inbox, by_subscriber, receiver_for
from infra.robots import RobotServer, robots_for
from infra.topology import Topology, build_topology
from reliability.checker import HEADER, TALLIES
from reliability.harness import (
    REGION,
    Faults,
    LambdaService,
    VirtualClock,
    hub_environment,
    moto_event_targets_cached,
    provision_hub,
)


@dataclass
class World:
    config: HubConfig
    topology: Topology
    res: Any
    receiver: DownstreamReceiver
    inboxes: dict[str, Inbox]
    paths: dict[str, str]
    clock: VirtualClock
    faults: Faults
    robots: RobotServer

    def service(self, exclude: tuple[str, ...] = ()) -> LambdaService:
        return LambdaService(self.topology, self.res, self.faults, exclude=exclude)


def _reset_lambda_state() -> None:
    """Clients and caches live as long as an execution environment; each test starts cold."""
    from aws_lambda_powertools.utilities import parameters

    from orderhub import settings
    from orderhub.aws import reset_clients

    reset_clients()
    parameters.clear_caches()
    settings._built.clear()


def make_world(monkeypatch: pytest.MonkeyPatch, config: HubConfig | None = None) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    clock, faults = VirtualClock(), Faults()
    receiver, config, paths = receiver_for(config or load_config())
    robots, config = robots_for(config, clock=lambda: clock.now().timestamp())
    topology = build_topology(config.topology_subscribers(), config.business_timezone)
    with receiver, robots, mock_aws(), clock.installed(), faults.installed(), moto_event_targets_cached():
        _reset_lambda_state()
        res = provision_hub(topology, config)
        for key, value in hub_environment(topology, config, res).items():
            monkeypatch.setenv(key, value)
        # Per-delivery INFO lines would be most of the run's work; warnings and errors still show.
        monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
        yield World(config, topology, res, receiver, by_subscriber(receiver, paths), paths, clock, faults, robots)
        _reset_lambda_state()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from make_world(monkeypatch)


@pytest.fixture
def one_subscriber_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The committed configuration with a single webhook subscriber that wants every order change."""
    config = load_config()
    crm = next(s for s in config.subscribers if s.name == "crm")
    yield from make_world(monkeypatch, config.model_copy(update={"subscribers": [crm]}))


@pytest.fixture
def outage_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The committed configuration, the WMS on the documented default backoff (30 s, 2, 10, 30 min)."""
    config = load_config()
    subscribers = [s.model_copy(update={"backoff_seconds": [30, 120, 600, 1800], "max_attempts": 5})
                   if s.name == "wms" else s for s in config.subscribers]
    yield from make_world(monkeypatch, config.model_copy(update={"subscribers": subscribers}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLIES:
        return
    terminalreporter.section("reliability: lost / duplicated / unexpected per scenario")
    terminalreporter.write_line(HEADER)
    for tally in TALLIES:
        terminalreporter.write_line(tally.row())
