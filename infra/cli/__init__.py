"""`orderhub`, the command line: one module per command group.

`main` assembles the groups; `commands` holds the operator groups, which the demo also runs. Each
group module has `register(subparsers)`: `local` (run, demo), `dlq`, `imports` (import),
`replay`, `reports` (drift report, gaps report), `exceptions`. Shared options and the stage's
configuration are in `common`.
"""
