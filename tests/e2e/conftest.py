"""E2E tier: the hub over real HTTP, served by the local runtime (moto + the real handlers in worker processes).

`local_stack` is one runtime for the whole session, on free ports, with the committed
development config (config/local.toml). It exposes `api_url`, `endpoint_url` (moto, for
boto3 assertions), `clock` (a ManualClock: schedules and TTL sweeps run only when a test
moves it, e.g. `local_stack.clock.advance(300)` fires hub-health once) and
`wait_until_idle(timeout)` (every queue consumed and the orders stream drained).

Batching windows are off here: they only add latency, and e2e asserts outcomes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import DEFAULT_CONFIG_PATH, load_config
from infra.local.clock import ManualClock
from infra.local.runtime import LocalRuntime

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # The session runtime (moto server thread, pollers) lives until the session ends. Running e2e last
    # keeps it from being alive while other tiers patch botocore with mock_aws, whichever paths are given.
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)  # stable: order kept within tiers


@pytest.fixture(scope="session")
def local_stack():
    runtime = LocalRuntime(load_config(DEFAULT_CONFIG_PATH), port=0, clock=ManualClock(), batching_windows=False,
                           timers_follow_clock=True)
    with runtime:
        failed = {name: init for name, init in runtime.warm().items() if isinstance(init, str)}
        if failed:
            pytest.fail(f"functions failed to initialise: {failed}")
        yield runtime
