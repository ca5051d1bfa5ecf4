"""orderhub benchmarks: `python -m bench.<name>` for one, `python -m bench.run_all` for all.

Every benchmark prints each figure beside an anchor measured in the same run, the goal, and
PASS/MISS. Benchmarks are not tests: nothing here asserts on time.

The package puts the repository root and `shared/` on sys.path so `.venv/bin/python -m bench...`
works from the repository root without PYTHONPATH.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for _path in (str(REPO / "shared"), str(REPO)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
