"""Each safety check can fail: break what it guards, one way at a time, and see the tests that guard it fail.

`make mutants` (or `.venv/bin/python -m tests.mutants`) copies the working tree (tracked and new
files, as `git ls-files` lists them) to a temporary directory, runs the guarding tests there once
unchanged (they must pass), then, for each mutant, patches the copy's order store and runs them
again. The working tree is never touched. Prints "killed by <test>" or "SURVIVED" per mutant and
exits non-zero if the unchanged tests fail or any mutant survives.

Mutants:
- lost update (store/orders.py): every fifth order write is skipped, silently (the mapper believes
  it wrote);
- blind overwrite (store/orders.py): the order write no longer requires the version it read
  (creation still must not overwrite);
- log overwrite (store/orders.py): the event-log put no longer requires the entry to be new, so a
  redelivery rewrites the entry of the first delivery;
- ledger overwrite (store/ledger.py): a ledger record is put without requiring it to be new, so a
  later report with other money replaces the first booking;
- money counted per report (payments/ledger.py): each record counts, not each movement, so a
  refund reported pending then confirmed is refunded twice;
- ledger skipped (mapping.py): the mapper lists records on the order without booking them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STORE = Path("shared/orderhub/store/orders.py")
CONCURRENT = "tests/reliability/test_concurrent_writers.py"
REDELIVERED = ("tests/reliability/test_nothing_lost.py::"
               "test_the_same_event_delivered_a_thousand_times_at_once_changes_the_order_once")


@dataclass(frozen=True)
class Mutant:
    name: str
    method: str  # the edits apply inside it only: a method of `cls`, or a module-level function
    edits: tuple[tuple[str, str], ...]  # (regex, replacement), each must match exactly once
    tests: tuple[str, ...]  # the smallest selection that guards against it
    path: Path = STORE
    cls: str | None = "DynamoOrderStore"


LEDGER_STORE = Path("shared/orderhub/store/ledger.py")
LEDGER = Path("shared/orderhub/payments/ledger.py")
MAPPING = Path("shared/orderhub/mapping.py")
CONVERGENCE = "tests/unit/test_ledger_convergence.py"


MUTANTS = (
    Mutant("lost update (every fifth order write skipped)", "put_order",
           ((r"\n(\s+)self\.client\.put_item\(\*\*kwargs\)",
             r"\n\1if next(_MUTANT_WRITES) % 5 == 4:\n\1    return  # mutant: the write silently skipped"
             r"\n\1self.client.put_item(**kwargs)"),),
           (CONCURRENT,)),
    Mutant("blind overwrite (no version condition on the order write)", "put_order",
           ((r'"ConditionExpression": condition',  # mutant: only creation stays conditional
             r'**({"ConditionExpression": condition} if expected_version == 0 else {})'),
            (r"\n(\s+)if values:", r"\n\1if values and expected_version == 0:")),
           (CONCURRENT,)),
    Mutant("log overwrite (no attribute_not_exists on the event-log put)", "append_event",
           ((r',\s*ConditionExpression="attribute_not_exists\(event_key\)"', ""),),
           (REDELIVERED,)),
    Mutant("ledger overwrite (no attribute_not_exists on the ledger put)", "_book_one",
           ((r'\s*ConditionExpression="attribute_not_exists\(record_id\)",', ""),
            (r',\s*ReturnValuesOnConditionCheckFailure="ALL_OLD"', "")),
           ("tests/integration/test_ledger_store.py",), path=LEDGER_STORE, cls="DynamoLedger"),
    Mutant("money counted per report (each ledger record counts, not each movement)", "movements",
           ((r'by_entry\.setdefault\(record_id\.rpartition\("#"\)\[0\], \[\]\)',
             "by_entry.setdefault(record_id, [])"),),
           (CONVERGENCE,), path=LEDGER, cls=None),
    Mutant("ledger skipped (records listed on the order, never booked)", "_book",
           ((r"held = ledger\.book\(records\)", "held = {r.record_id: r.line for r in records}"),),
           (CONVERGENCE,), path=MAPPING, cls=None),
)


def copy_tree(into: Path) -> None:
    """The working tree as it is (committed or not), without the virtualenv and caches."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[list[str], str]:
    """The failing tests (empty when all pass) and pytest's report. The copy's own packages come first on
    sys.path (pytest's `pythonpath`), ahead of the virtualenv's editable install of the working tree."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    reply = subprocess.run([sys.executable, "-m", "pytest", *tests, "-x", "-q", "-rf", "-p", "no:cacheprovider"],
                           cwd=tree, env=env, capture_output=True, text=True)
    failed = [line.split()[1] for line in reply.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    if reply.returncode != 0 and not failed:
        failed = [f"(pytest exited {reply.returncode})"]
    report = [line for line in reply.stdout.splitlines() if not line.startswith(("{", "WARNING ", "ERROR  orderhub"))]
    return failed, "\n".join(report[-60:]) + reply.stderr[-2000:]


def mutate(tree: Path, mutant: Mutant, original: str) -> None:
    """The module with the mutant's edits made inside <cls>.<method> (or the function <method>), or exit if
    they no longer fit."""
    if mutant.cls is not None:
        start = original.index(f"\n    def {mutant.method}(", original.index(f"\nclass {mutant.cls}"))
        ends = [original.find("\n    def ", start + 1), original.find("\nclass ", start + 1)]
    else:
        start = original.index(f"\ndef {mutant.method}(")
        ends = [original.find(f"\n{top}", start + 1) for top in ("def ", "class ", "@")]
    ends = [i for i in ends if i > 0]
    end = min(ends) if ends else len(original)
    body = original[start:end]
    where = f"{mutant.cls}.{mutant.method}" if mutant.cls else mutant.method
    for pattern, replacement in mutant.edits:
        body, found = re.subn(pattern, replacement, body)
        if found != 1:
            raise SystemExit(f"{mutant.name}: {pattern!r} matches {found} times in {where} ({mutant.path}); "
                             "update tests/mutants.py to the code as it is")
    mutated = original[:start] + body + original[end:] + "\n_MUTANT_WRITES = __import__('itertools').count()\n"
    (tree / mutant.path).write_text(mutated, encoding="utf-8")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="orderhub-mutants-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        originals = {m.path: (tree / m.path).read_text(encoding="utf-8") for m in MUTANTS}
        guarding = tuple(dict.fromkeys(t for m in MUTANTS for t in m.tests))
        print(f"unchanged tree: {' '.join(guarding)}", flush=True)
        failing, report = run_tests(tree, guarding)
        if failing:
            print(f"  the guarding tests fail without any mutant: {failing}\n{report}")
            return 1
        print("  pass", flush=True)
        survived = 0
        for mutant in MUTANTS:
            mutate(tree, mutant, originals[mutant.path])
            killed_by, _ = run_tests(tree, mutant.tests)
            print(f"{mutant.name}: " + (f"killed by {', '.join(killed_by)}" if killed_by else "SURVIVED"), flush=True)
            survived += not killed_by
            (tree / mutant.path).write_text(originals[mutant.path], encoding="utf-8")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
