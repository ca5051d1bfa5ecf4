"""The operator command groups and the parser they make; the demo runs them as an operator would.

The operator commands are plain boto3: with normal credentials they act on AWS; pointed at a
running `orderhub run` (AWS_ENDPOINT_URL or --endpoint-url) they act on its embedded moto.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from infra.cli import dlq, exceptions, imports, ledger, recon, replay, reports

OPERATOR_GROUPS: tuple[ModuleType, ...] = (dlq, imports, replay, reports, exceptions, ledger, recon)
DESCRIPTION = "run the hub locally, and operate it (locally or in AWS)"


def run(argv: Sequence[str] | None, groups: Sequence[ModuleType] = OPERATOR_GROUPS,
        passes_rest: frozenset[str] = frozenset()) -> int:
    """Parse `argv` against `groups` and run the chosen command; `passes_rest` names commands that take
    the arguments they do not declare (the demo's own options)."""
    parser = argparse.ArgumentParser(prog="orderhub", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in groups:
        group.register(sub)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in passes_rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    return int(args.func(args) or 0)
