"""`orderhub`: run the hub locally, and operate it (locally or in AWS).

`run` and `demo` (infra/cli/local.py) start the hub on the embedded AWS; the operator commands
(infra/cli/commands.py) act on AWS or, pointed at a running `orderhub run`, on its embedded moto:
`dlq list|show|redrive|purge`, `exceptions list|report`, `import` (a CSV file of order events,
events/import/), `replay` (re-feed logged requests), `drift report` / `gaps report`, and
`ledger show|day|journal|export|record-transfer|confirm|reverse` (the payment voucher ledger), and
`recon try` (a ledger export matched against a bill or bank statement, on files).
"""

from __future__ import annotations

from infra.cli import commands, local


def main(argv: list[str] | None = None) -> int:
    return commands.run(argv, (local, *commands.OPERATOR_GROUPS), passes_rest=frozenset({"demo"}))


if __name__ == "__main__":
    raise SystemExit(main())
