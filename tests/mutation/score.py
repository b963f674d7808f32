"""Mutation score per module_utils file from a finished `mutmut run`, and the 90% gate.

    cd .mutation && mutmut results --all true | python ../tests/mutation/score.py

score = killed / (killed + survived + no tests + suspicious), where "killed" includes
mutants ended by mutmut's timeout and those a type checker rejected, and "survived" leaves out
the equivalent mutants recorded in tests/mutation/equivalent_mutants.py (a mutant no test can
kill because it does not change what the code does). Mutants not checked (a partial run) or
skipped do not count. Exits 1 when a gated file is below 90%, or when the record of equivalent
mutants no longer matches the run (see check_equivalents).
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from equivalent_mutants import EQUIVALENT  # noqa: E402  (the record beside this script)

PACKAGE = "ansible_collections.rhoai.gpuaas.plugins.module_utils."
GATED = ("kueue", "isvc", "machinesets", "k8s_wait", "s3_etag")
GATE = 90.0
KILLED = {"killed", "timeout", "caught by type check"}
COUNTED = KILLED | {"survived", "no tests", "suspicious", "segfault"}
LINE = re.compile(r"^\s*(?P<mutant>\S+): (?P<status>.+?)\s*$")


def mutant_diff(name: str) -> list[str]:
    """The changed lines of a mutant, as ``mutmut show`` prints them (run in the mutmut directory).

    Why mutmut's own function rather than ``mutmut show``: one process instead of one per
    entry, each of which looks through every mutated file (minutes on a loaded machine).
    """
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant  # mutmut 3.8.1 (pinned)
    except ImportError:
        shown = subprocess.run([sys.executable, "-m", "mutmut", "show", PACKAGE + name],
                               capture_output=True, text=True, check=False).stdout
    else:
        path = PACKAGE.replace(".", "/") + name.split(".", 1)[0] + ".py"
        shown = get_diff_for_mutant(PACKAGE + name, path=path)
    return [line for line in shown.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def check_equivalents(statuses: dict[str, str]) -> tuple[set[str], list[str]]:
    """The recorded equivalent mutants among the survivors, and what no longer matches the record.

    Why check: mutmut numbers mutants per function, so an edit shifts the names; a record that
    names another mutant than the one it describes would hide a real survivor. Each entry must
    be a survivor of this run whose mutated line still contains the recorded text.
    """
    equivalent, stale = set(), []
    modules_run = {name.split(".", 1)[0] for name, status in statuses.items() if status in COUNTED}
    for name, (text, _why) in sorted(EQUIVALENT.items()):
        if name.split(".", 1)[0] not in modules_run:
            continue  # a run restricted to other files
        status = statuses.get(name)
        if status != "survived":
            stale.append("%s: recorded as equivalent, but %s" % (name, status or "not in this run"))
            continue
        # a mutant that only deletes a line is recorded by the deleted text, written "-text"
        sign, wanted = ("-", text[1:]) if text.startswith("-") else ("+", text)
        changed = [line for line in mutant_diff(name) if line.startswith(sign)]
        if not any(wanted in line for line in changed):
            stale.append("%s: its mutated line no longer contains %r (renumbered?): %s" % (name, wanted, changed))
            continue
        equivalent.add(name)
    return equivalent, stale


def main() -> int:
    statuses: dict[str, str] = {}
    for line in sys.stdin:
        match = LINE.match(line)
        if match and match["mutant"].startswith(PACKAGE):
            statuses[match["mutant"][len(PACKAGE):]] = match["status"]
    if not statuses:
        print("no mutmut results read", file=sys.stderr)
        return 1
    equivalent, stale = check_equivalents(statuses)
    per_file: dict[str, Counter] = defaultdict(Counter)
    for name, status in statuses.items():
        per_file[name.split(".", 1)[0]]["equivalent" if name in equivalent else status] += 1
    failed = []
    print(f"{'file':22} {'score':>7} {'killed':>7} {'survived':>9} {'equivalent':>11} {'no tests':>9} "
          f"{'timeout':>8} {'unchecked':>10}")
    for module in sorted(per_file):
        counts = per_file[module]
        killed = sum(counts[s] for s in KILLED)
        counted = sum(counts[s] for s in COUNTED)
        unchecked = sum(n for s, n in counts.items() if s not in COUNTED | {"equivalent"})
        score = 100.0 * killed / counted if counted else 0.0
        mark = ""
        if module in GATED:
            mark = "  not run" if not counted else ("  >= 90% ok" if score >= GATE else "  BELOW 90%")
            if counted and score < GATE:
                failed.append(module)
        print(f"{module + '.py':22} {score:6.1f}% {killed:7} {counts['survived']:9} {counts['equivalent']:11} "
              f"{counts['no tests']:9} {counts['timeout']:8} {unchecked:10}{mark}")
    for problem in stale:
        print("equivalent_mutants.py is stale: " + problem)
    if failed:
        print("below the 90% gate: " + ", ".join(f + ".py" for f in failed))
    return 1 if failed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
