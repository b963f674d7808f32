"""Mutation score per module_utils file from a finished `mutmut run`, and the 90% gate.

    cd .mutation && mutmut results --all true | python ../tests/mutation/score.py

score = killed / (killed + survived + no tests + suspicious), where "killed" includes
mutants ended by mutmut's timeout and those a type checker rejected. Mutants not checked (a
partial run) or skipped do not count. Exits 1 when a gated file is below 90%.
"""
from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

PACKAGE = "ansible_collections.rhoai.gpuaas.plugins.module_utils."
GATED = ("kueue", "isvc", "machinesets", "k8s_wait", "s3_etag")
GATE = 90.0
KILLED = {"killed", "timeout", "caught by type check"}
COUNTED = KILLED | {"survived", "no tests", "suspicious", "segfault"}
LINE = re.compile(r"^\s*(?P<mutant>\S+): (?P<status>.+?)\s*$")


def main() -> int:
    per_file: dict[str, Counter] = defaultdict(Counter)
    for line in sys.stdin:
        match = LINE.match(line)
        if not match or not match["mutant"].startswith(PACKAGE):
            continue
        module = match["mutant"][len(PACKAGE):].split(".", 1)[0]
        per_file[module][match["status"]] += 1
    if not per_file:
        print("no mutmut results read", file=sys.stderr)
        return 1
    failed = []
    print(f"{'file':16} {'score':>7} {'killed':>7} {'survived':>9} {'no tests':>9} {'timeout':>8} {'unchecked':>10}")
    for module in sorted(per_file):
        counts = per_file[module]
        killed = sum(counts[s] for s in KILLED)
        counted = sum(counts[s] for s in COUNTED)
        unchecked = sum(n for s, n in counts.items() if s not in COUNTED)
        score = 100.0 * killed / counted if counted else 0.0
        gated = module in GATED
        mark = "" if not gated else ("  >= 90% ok" if score >= GATE else "  BELOW 90%")
        if gated and score < GATE and counted:
            failed.append(module)
        print(f"{module + '.py':16} {score:6.1f}% {killed:7} {counts['survived']:9} {counts['no tests']:9} "
              f"{counts['timeout']:8} {unchecked:10}{mark}")
    if failed:
        print("below the 90% gate: " + ", ".join(f + ".py" for f in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
