"""Which "now" the embedded AWS (moto) reads while a local runtime runs.

moto reads the time through `moto.core.utils.utcnow`, and some of its modules bind that function
when they are first imported (`from moto.core.utils import utcnow`, e.g. the DynamoDB table that
stamps `ApproximateCreationDateTime`). A patch in place at that moment stays in the module for
ever: a clock moved by one test then leaks into every later one in the process. So:

- whenever a runtime starts or stops, each moto module's own `utcnow` is rebound to a forwarder
  that calls `moto.core.utils.utcnow` at every read: one place decides, and nothing stale stays;
- a running runtime installs its reader as `moto.core.utils.utcnow`: its own clock when its timers
  follow it (SQS visibility and delays, message and stream timestamps then follow the clock: a
  manual clock's test moves AWS time by hand, as the in-process hub's VirtualClock does), real
  time otherwise, whatever an earlier patch left there; with several runtimes running, the newest
  one decides, and stopping gives the decision back.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.local.clock import Clock

# moto compares "now > visible_at"; a reader that never returns the same instant twice lets a
# message made visible "now" be received on the next call, as time passing would.
_TICK = timedelta(microseconds=1)

_lock = threading.Lock()
_installed: list[tuple[object, Callable[[], datetime]]] = []  # (owner, reader), oldest first
_before: Callable[[], datetime] | None = None  # moto's reader before the first install


class AwsTime:
    """A clock as moto wants it: naive UTC, strictly increasing across reads."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        now = self._clock.now().astimezone(UTC).replace(tzinfo=None)
        with self._lock:
            self._last = now if self._last is None or now > self._last else self._last + _TICK
            return self._last


def _forward() -> datetime:
    import moto.core.utils as moto_utils

    return moto_utils.utcnow()


def forward_moto_modules() -> int:
    """Rebind every loaded moto module's own `utcnow` to the forwarder; returns how many were rebound."""
    import moto.core.utils as moto_utils

    rebound = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("moto.") or module is None or module is moto_utils:
            continue
        bound = getattr(module, "__dict__", {}).get("utcnow")
        if callable(bound) and bound is not _forward:
            module.__dict__["utcnow"] = _forward
            rebound += 1
    return rebound


def follow(owner: object, clock: Clock) -> None:
    """From now until `release(owner)`, moto reads `clock`."""
    import moto.core.utils as moto_utils

    global _before
    with _lock:
        forward_moto_modules()
        if not _installed:
            _before = moto_utils.utcnow
        _installed.append((owner, AwsTime(clock)))
        moto_utils.utcnow = _installed[-1][1]


def release(owner: object) -> None:
    """Give the decision back: to the newest runtime still following its clock, or to moto's own reader."""
    import moto.core.utils as moto_utils

    global _before
    with _lock:
        _installed[:] = [(o, r) for o, r in _installed if o is not owner]
        if _installed:
            moto_utils.utcnow = _installed[-1][1]
        elif _before is not None:
            moto_utils.utcnow, _before = _before, None
        forward_moto_modules()  # modules first imported while a runtime's reader was installed


def reader() -> Any:
    """moto's reader now (for tests and diagnostics)."""
    import moto.core.utils as moto_utils

    return moto_utils.utcnow
