"""Hand-written mutants that the unit tests must kill (issue 14's list, and others mutmut cannot make).

mutmut mutates code inside functions only; the Kueue message parsing, the S3 ETag pattern and
the part-size tables live in module-level regular expressions and constants, and some bugs are
a missing argument rather than a changed operator. Each mutant below is one plausible bug,
written as an exact text replacement in a module_utils file.
For each one this script copies the collection to a scratch directory, applies the replacement,
runs the unit tests of that file and expects them to FAIL. A replacement whose text is no longer
in the file fails the run too: the list must follow the code.

    python tests/mutation/listed_mutants.py            # all
    python tests/mutation/listed_mutants.py kueue      # those whose name contains "kueue"
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = Path("ansible_collections/rhoai/gpuaas")
UTILS = COLLECTION / "plugins/module_utils"
UNIT = COLLECTION / "tests/unit/plugins/module_utils"


class Mutant(NamedTuple):
    name: str
    file: str  # in plugins/module_utils
    old: str
    new: str


MUTANTS = [
    Mutant("kueue: the 'failed to assign flavors' wording is not recognised", "kueue.py",
           'r"^(?:couldn\'t|failed to) assign flavors', 'r"^(?:couldn\'t) assign flavors'),
    Mutant("kueue: an untolerated taint after another reason is glued to it", "kueue.py",
           "insufficient |untolerated |resource ", "insufficient |resource "),
    Mutant("kueue: a missing ClusterQueue is no longer terminal", "kueue.py",
           '    re.compile(r"ClusterQueue \\S+ doesn\'t exist"),\n', ""),
    Mutant("kueue: Evicted checked after QuotaReserved", "kueue.py",
           '    if _is_true(conds, "Evicted"):\n        return "evicted"\n'
           '    if _is_true(conds, "QuotaReserved"):\n        return "quota_reserved"\n',
           '    if _is_true(conds, "QuotaReserved"):\n        return "quota_reserved"\n'
           '    if _is_true(conds, "Evicted"):\n        return "evicted"\n'),
    Mutant("kueue: a missing LocalQueue is no longer terminal", "kueue.py",
           '    re.compile(r"LocalQueue \\S+ doesn\'t exist"),\n', ""),
    Mutant("kueue: an uncovered resource is no longer terminal", "kueue.py",
           '    re.compile(r"resource \\S+ unavailable in ClusterQueue"),\n', ""),
    Mutant("kueue: the 'N more needed' wording is read as 'maximum capacity'", "kueue.py",
           'r"^insufficient unused quota for', 'r"^insufficient unused quota forX'),
    Mutant("machinesets: status.availableReplicas ignored", "machinesets.py",
           'for field in ("readyReplicas", "availableReplicas"):', 'for field in ("readyReplicas",):'),
    Mutant("machinesets: Machines being deleted counted as live", "machinesets.py",
           "live = [m for m in mine if not is_deleting(m)]", "live = list(mine)"),
    Mutant("machinesets: owner references that are not the controller count", "machinesets.py",
           'if any(ref.get("controller") and ref.get("uid") == uid', 'if any(ref.get("uid") == uid'),
    Mutant("machinesets: the label selector is dropped", "machinesets.py",
           'client.list(API_VERSION, "MachineSet", namespace, label_selector=selector)',
           'client.list(API_VERSION, "MachineSet", namespace)'),
    Mutant("k8s_wait: a watch may outlive the deadline", "k8s_wait.py",
           "timeout = max(1, min(MAX_WATCH_SECONDS, int(remaining) + 1))", "timeout = MAX_WATCH_SECONDS"),
    Mutant("k8s_wait: a 410 Gone is retried instead of re-listed", "k8s_wait.py",
           "resource_version = None  # events lost: re-list", "pass"),
    Mutant("k8s_wait: predicates run before every source is listed", "k8s_wait.py",
           "            if len(listed) < len(names):\n                continue\n", ""),
    # s3_etag's tables and patterns are module-level too (the upload rewrite kept them there)
    Mutant("s3_etag: MinIO mc's 16 MiB parts are not among the known part sizes", "s3_etag.py",
           "COMMON_PART_SIZES_MIB = (8, 16, 32,", "COMMON_PART_SIZES_MIB = (8, 32,"),
    Mutant("s3_etag: the part count of a multipart ETag is not read", "s3_etag.py",
           '_ETAG_RE = re.compile(r"^([0-9a-f]{32})(?:-(\\d+))?$")', '_ETAG_RE = re.compile(r"^([0-9a-f]{32})")'),
    Mutant("s3_etag: the 'KiB' spelling of part_size is refused", "s3_etag.py",
           '"kib": 1024, ', ""),
    Mutant("ca_bundle: one certificate of a chain in the bundle counts as all", "ca_bundle.py",
           "return all(der in present for der in wanted)", "return any(der in present for der in wanted)"),
    Mutant("ca_bundle: a bundle holding the CA is enough, the connection's entry unchecked", "ca_bundle.py",
           'return state["in_bundle"] and entry.get("cabundle_configmap") == BUNDLE', 'return state["in_bundle"]'),
    Mutant("ca_bundle: a CA already in the DSCI is refused before the operator copies it", "ca_bundle.py",
           'if holds(trust.get("customCABundle") or "", wanted) or TRUSTED not in state["ca_configmaps"]:',
           'if TRUSTED not in state["ca_configmaps"]:'),
    Mutant("ca_bundle: a namespace that opted out is sent to the DSCI", "ca_bundle.py",
           '"0", "f", "F", "false", "False", "FALSE"):', '"no",):'),
]


def run_tests(tree: Path, test_file: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(UNIT / test_file)],
        cwd=tree, capture_output=True, text=True, timeout=300)


def main(args: list[str]) -> int:
    chosen = [m for m in MUTANTS if not args or any(a in m.name for a in args)]
    started = time.monotonic()
    survivors, broken = [], []
    with tempfile.TemporaryDirectory(prefix="listed-mutants-") as scratch:
        tree = Path(scratch)
        pristine = ROOT / "collections" / COLLECTION
        for test_file in sorted({"test_" + m.file for m in chosen}):
            # a mutant is only killed if the same tests pass without it
            result = run_tests(pristine.parents[2], test_file)
            if result.returncode != 0:
                print(f"the unit tests fail without any mutant:\n{result.stdout[-3000:]}")
                return 1
        for mutant in chosen:
            shutil.rmtree(tree / "ansible_collections", ignore_errors=True)
            shutil.copytree(pristine, tree / COLLECTION, ignore=shutil.ignore_patterns("__pycache__", "output"))
            path = tree / UTILS / mutant.file
            source = path.read_text()
            if source.count(mutant.old) != 1:
                broken.append(mutant)
                print(f"STALE     {mutant.name}: the text to replace occurs {source.count(mutant.old)} times "
                      f"in {mutant.file}; update tests/mutation/listed_mutants.py")
                continue
            path.write_text(source.replace(mutant.old, mutant.new))
            result = run_tests(tree, "test_" + mutant.file)
            if result.returncode == 0:
                survivors.append(mutant)
                print(f"SURVIVED  {mutant.name}")
            elif result.returncode == 1:
                failed = [line[len("FAILED "):].split(" - ")[0] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
                print(f"killed    {mutant.name}  by {', '.join(t.split('::', 1)[1] for t in failed)}")
            else:
                broken.append(mutant)
                print(f"ERROR     {mutant.name}: pytest exited {result.returncode}\n{result.stdout[-2000:]}")
    print(f"{len(chosen) - len(survivors) - len(broken)} of {len(chosen)} listed mutants killed, "
          f"{len(survivors)} survived, {len(broken)} stale or broken ({time.monotonic() - started:.0f}s)")
    return 1 if survivors or broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
