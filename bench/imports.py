"""Cold import time of each Lambda handler module vs a typical Powertools stack, same run.

    python -m bench.imports [--runs 7] [--first-call-runs 3] [--no-profile]

Each measurement is a fresh interpreter (`python -c`) with the function's environment, timing
`import functions.<name>.handler` with perf_counter inside the process (so interpreter start-up
is not in it). Runs are round-robin over all targets (baseline, handlers, anchor) so drift hits
them alike; the first round only warms the bytecode cache and is dropped. Figures are medians.
The process wall time minus an empty interpreter's is printed too, for information.

ANCHOR: a typical Powertools stack imported the same way:
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.utilities.idempotency import idempotent_function, DynamoDBPersistenceLayer
GOAL: each handler <= 0.5 x anchor, with boto3 imported in the same interpreter: the anchor imports
it (Powertools idempotency does), the hub at its first AWS call of the same cold start.
Also: boto3's import alone and one client created after it (both sides pay the clients).

Also, for information: import + first invocation (AWS answered in-process, see bench._firstcall),
and where the import time goes (-X importtime self time, grouped by top-level package).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict

from bench import REPO
from bench._support import Figure, apply_environment, dump_json, function_environment, median, print_figures

HANDLERS = ("webhook_ingest", "status_mapper", "event_publisher", "dispatcher", "orders_api", "hub_health",
            "notifier", "sla_watchdog", "exceptions_api")
ANCHOR_STMT = ("from aws_lambda_powertools import Logger, Metrics, Tracer; "
               "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; "
               "from aws_lambda_powertools.utilities.idempotency import idempotent_function, "
               "DynamoDBPersistenceLayer")
GOAL_RATIO = 0.5
BOTO3_CLIENT_STMT = "import boto3; boto3.session.Session().client('sqs', region_name='us-east-1')"

_CHILD = """
import time
_c0, _t0 = time.process_time(), time.perf_counter()
{stmt}
_t1, _c1 = time.perf_counter(), time.process_time()
import sys
_first = None
if {first_call!r}:
    import bench._firstcall as _fc
    _first = _fc.first_call({name!r})
sys.stderr.write("@@RESULT@@" + repr(((_t1 - _t0), _first, (_c1 - _c0))) + "\\n")
"""


def _child_env(function: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "ORDERHUB_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "shared"), str(REPO)])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    env.update(function_environment(function or "webhook_ingest"))
    return env


def _run_child(stmt: str, function: str | None, name: str = "", first_call: bool = False,
               extra_args: tuple[str, ...] = ()) -> tuple[float, float | None, float, str, float]:
    """(in-process import s, first call s or None, process wall s, stderr, in-process import CPU s)."""
    code = _CHILD.format(stmt=stmt, first_call=first_call, name=name)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *extra_args, "-c", code],  # noqa: S603 - our own code
                          cwd=str(REPO), env=_child_env(function), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    marker = [line for line in proc.stderr.splitlines() if line.startswith("@@RESULT@@")]
    if proc.returncode != 0 or not marker:
        raise RuntimeError(f"child for {stmt!r} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    imported, first, cpu = eval(marker[-1][len("@@RESULT@@"):])  # noqa: S307 - our own child's repr of floats
    return imported, first, wall, proc.stderr, cpu


def _group(module: str) -> str:
    top = module.split(".")[0]
    if top in ("functions", "orderhub", "infra"):
        return ".".join(module.split(".")[:2]) if top == "orderhub" else top
    return top


def importtime_profile(name: str) -> list[tuple[str, float]]:
    """Self import time grouped by top-level package (orderhub by subpackage), ms, largest first."""
    _, _, _, stderr, _ = _run_child(f"import functions.{name}.handler", name, extra_args=("-X", "importtime"))
    groups: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            self_us = int(parts[0])
        except ValueError:
            continue  # the header line
        groups[_group(parts[2].strip())] += self_us / 1000
    return sorted(groups.items(), key=lambda kv: -kv[1])


def run(runs: int = 7, first_call_runs: int = 3, profile: bool = True) -> list[Figure]:
    targets: list[tuple[str, str, str | None]] = [("baseline", "pass", None)]
    targets += [(name, f"import functions.{name}.handler", name) for name in HANDLERS]
    # The anchor imports boto3 (Powertools idempotency does); the hub imports it at its first AWS
    # call, in the same cold start. Compared fairly, both have it.
    targets += [(f"{name}+boto3", f"import functions.{name}.handler; import boto3", name) for name in HANDLERS]
    targets.append(("anchor", ANCHOR_STMT, None))
    targets += [("boto3", "import boto3", None), ("boto3+client", BOTO3_CLIENT_STMT, None)]

    imports: dict[str, list[float]] = defaultdict(list)
    walls: dict[str, list[float]] = defaultdict(list)
    cpus: dict[str, list[float]] = defaultdict(list)
    for round_no in range(runs + 1):
        for label, stmt, function in targets:
            imported, _, wall, _, cpu = _run_child(stmt, function)
            if round_no:  # round 0 warms the bytecode cache
                imports[label].append(imported)
                walls[label].append(wall)
                cpus[label].append(cpu)
        print(f"  round {round_no}/{runs} done", file=sys.stderr)

    firsts: dict[str, list[float]] = defaultdict(list)
    for _ in range(first_call_runs):
        for name in HANDLERS:
            imported, first, _, _, _ = _run_child(f"import functions.{name}.handler", name, name, first_call=True)
            firsts[name].append(imported * 1000 + first * 1000)

    anchor_ms = median(imports["anchor"]) * 1000
    anchor_cpu_ms = median(cpus["anchor"]) * 1000
    base_wall_ms = median(walls["baseline"]) * 1000
    anchor_wall_ms = median(walls["anchor"]) * 1000 - base_wall_ms
    figures = [Figure("imports", "empty interpreter start (baseline, wall)", base_wall_ms, "ms",
                      note="subtracted from the process-wall figures; the in-process figures exclude it")]
    boto3_ms = median(imports["boto3"]) * 1000
    client_ms = median(imports["boto3+client"]) * 1000 - boto3_ms
    figures.append(Figure("imports", "boto3 import / one client created after it (info)", boto3_ms, "ms",
                          note=f"a client (session, service model, endpoint rules) {client_ms:.0f} ms more, paid by"
                               " every function at its first AWS call, the hub's and the anchor's alike"))
    figures.append(Figure("imports", "ANCHOR Powertools stack import", anchor_ms, "ms",
                          note=f"min {min(imports['anchor']) * 1000:.0f} ms; CPU time {anchor_cpu_ms:.0f} ms;"
                               f" process wall - baseline {anchor_wall_ms:.0f} ms"))
    for name in HANDLERS:
        ms = median(imports[name]) * 1000
        with_boto3 = median(imports[f"{name}+boto3"]) * 1000
        ratio = with_boto3 / anchor_ms
        wall_ms = median(walls[f"{name}+boto3"]) * 1000 - base_wall_ms
        cpu_ms = median(cpus[f"{name}+boto3"]) * 1000
        figures.append(Figure("imports", f"import functions.{name}.handler + boto3", with_boto3, "ms",
                              anchor=anchor_ms, goal=f"<= {GOAL_RATIO} x anchor", passed=ratio <= GOAL_RATIO,
                              ratio=ratio,
                              note=(f"MISS: {ratio:.2f}x; boto3 alone is {boto3_ms:.0f} ms of it. "
                                    if ratio > GOAL_RATIO else "")
                                   + f"boto3 imported in the same cold start, as the anchor imports it; without it "
                                   f"(boto3 left to the first AWS call) {ms:.0f} ms = {ms / anchor_ms:.2f}x anchor; "
                                   f"CPU time {cpu_ms:.0f} ms ({cpu_ms / anchor_cpu_ms:.2f}x anchor CPU); process "
                                   f"wall - baseline {wall_ms:.0f} ms ({wall_ms / anchor_wall_ms:.2f}x)"))
    for name in HANDLERS:
        if firsts[name]:
            figures.append(Figure("imports", f"import + first call, {name} (AWS faked)", median(firsts[name]),
                                  "ms", anchor=anchor_ms, ratio=median(firsts[name]) / anchor_ms))
    if profile:
        print("\n  where the import time goes (-X importtime, self ms by package; one run, inflated by"
              " the instrumentation):", file=sys.stderr)
        for name in HANDLERS:
            groups = importtime_profile(name)
            total = sum(ms for _, ms in groups)
            top = ", ".join(f"{g} {ms:.0f}" for g, ms in groups[:7])
            figures.append(Figure("imports", f"importtime profile {name}", total, "ms",
                                  note=f"top self time: {top}"))
    return figures


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--first-call-runs", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--json", help="also write the figures here (bench.run_all)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    apply_environment("webhook_ingest")  # for the parent's own config reads only
    figures = run(args.runs, args.first_call_runs, not args.no_profile)
    print_figures(f"bench.imports: cold import per handler (median of {args.runs}, fresh interpreter each;"
                  f" took {time.perf_counter() - t0:.0f} s)", figures)
    dump_json(args.json, "imports", figures, [], time.perf_counter() - t0)
    return figures


if __name__ == "__main__":
    main()
