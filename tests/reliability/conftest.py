"""Reliability tier: scenarios of loss and duplication, each checked and counted (tests/reliability/checker.py).

`world` is a fresh hub per test in this process (infra/local/inprocess.py): moto provisioned from
the topology, the real handlers with their environment, stand-ins for the webhook subscribers and
the robots, AWS's clock virtual and the fault injector installed (rate 0 until a scenario raises it).
The counts of every scenario are printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra.config import HubConfig, load_config
from infra.local.aws_clock import forward_moto_modules
from infra.local.inprocess import InProcessHub, inprocess_hub
from reliability.checker import HEADER, TALLIES


def _hub(config: HubConfig) -> Iterator[InProcessHub]:
    """A hub for one test. moto modules that bind its clock by name (`from moto.core.utils import utcnow`:
    moto.dynamodb.models.table, which stamps stream records, among them) keep what was installed when
    they were first imported: one imported while a hub ran would read that hub's virtual clock for good,
    in every later test of the process (stream records ~20 minutes away from now, after this tier).
    So they forward to moto.core.utils' reader: this hub's clock while it runs, the real one after."""
    try:
        with inprocess_hub(config) as hub:
            forward_moto_modules()
            yield hub
    finally:
        forward_moto_modules()


@pytest.fixture
def world() -> Iterator[InProcessHub]:
    yield from _hub(load_config())


@pytest.fixture
def one_subscriber_world() -> Iterator[InProcessHub]:
    """The committed configuration with a single webhook subscriber that wants every order change."""
    config = load_config()
    crm = next(s for s in config.subscribers if s.name == "crm")
    yield from _hub(config.model_copy(update={"subscribers": [crm]}))


@pytest.fixture
def outage_world() -> Iterator[InProcessHub]:
    """The committed configuration, the WMS on the documented default backoff (30 s, 2, 10, 30 min)."""
    config = load_config()
    subscribers = [s.model_copy(update={"backoff_seconds": [30, 120, 600, 1800], "max_attempts": 5})
                   if s.name == "wms" else s for s in config.subscribers]
    yield from _hub(config.model_copy(update={"subscribers": subscribers}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLIES:
        return
    terminalreporter.section("reliability: lost / duplicated / unexpected / diverged per scenario")
    terminalreporter.write_line(HEADER)
    for tally in TALLIES:
        terminalreporter.write_line(tally.row())
