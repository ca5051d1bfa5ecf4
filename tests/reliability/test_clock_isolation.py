"""The tier's virtual clock stays in the tier: after a hub, moto reads the real time again, everywhere."""

from __future__ import annotations

import importlib
import sys
from datetime import timedelta

from infra.config import load_config
from reliability.conftest import _hub


def test_a_moto_module_first_imported_while_a_hub_ran_reads_the_real_time_after_it():
    # Given a hub whose AWS clock is a day ahead, and a moto module that binds moto's clock by name
    # imported for the first time while it runs (as moto.dynamodb.models.table is, in a fresh process)
    sys.modules.pop("moto.acm.models", None)
    hub = _hub(load_config())
    world = next(hub)
    world.clock.advance(24 * 3600)
    module = importlib.import_module("moto.acm.models")
    assert module.utcnow() >= world.clock.now().replace(tzinfo=None) - timedelta(seconds=1)  # the hub's time
    # When the hub is gone
    hub.close()
    # Then that module, like every other, reads the real time: not the day ahead the hub had reached
    assert module.utcnow() < world.clock.now().replace(tzinfo=None) - timedelta(hours=12)
