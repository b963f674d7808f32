#!/usr/bin/env python3
"""Step 3 of the handover against its physical floor, and against the polling idiom users write today.

On the testbed (`make testbed-up`, the demo deployed by this script), each run resets the demo to
step 2 (mistral-3-bf16 on, devstral-2 on and pending), then lets one variant do step 3 while an
independent observer watches the namespace and stamps every physical event with a monotonic clock:

    stop written -> Deployment gone -> pods gone -> Workload gone -> incoming admitted -> ungated
    -> bound -> Running -> Ready

Variants (rotating order, `--runs` each):
- `module`:   `ansible -m rhoai.gpuaas.gpu_handover` (wait_for admitted): the detection lag of the admission;
- `playbook`: `ansible-playbook playbooks/handover.yml -e handover_step=3` (waits until Ready, prints the board);
- `poll5`, `poll1`: benchmarks/polling_idiom.yml - kubernetes.core.k8s patches the stop annotation, then
  k8s_info with until/retries/delay 5 (or 1) on the incoming Workload and the InferenceService's Ready.

Also (`--whole`) the whole three-step handover.yml from the baseline, with and without `--unrelated`
unrelated Workloads in the namespace. Results: benchmarks/results/handover-<time>.json (git-ignored)
and a Markdown table on stdout. Nothing here asserts a timing.

    .venv/bin/python benchmarks/handover.py --runs 5
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "testbed"))

from kubernetes import config, dynamic, watch  # noqa: E402

import testbed  # noqa: E402
from ansible_collections.rhoai.gpuaas.plugins.module_utils import gpu_view, isvc  # noqa: E402
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import Client  # noqa: E402

NS = "private-ai"
OUT, INC, RES = "mistral-3-bf16", "devstral-2", "mistral-3-int4"
CQ = "rhoai-main-queue"
KUEUE = "kueue.x-k8s.io/v1beta2"
BIN = Path(sys.executable).parent
EVENTS = ("stop_written", "deployment_gone", "pods_gone", "workload_gone", "incoming_admitted", "ungated",
          "bound", "running", "ready")


def env() -> Dict[str, str]:
    out = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{BIN}:{os.environ['PATH']}")
    out.pop("ANSIBLE_STDOUT_CALLBACK", None)
    return out


def run(cmd: List[str], json_out: bool = False) -> Dict[str, Any]:
    """Run an Ansible command; monotonic start/end and, with the json callback, its results."""
    e = env()
    if json_out:
        e.update(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=900)
    end = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return {"start": start, "end": end, "stdout": proc.stdout}


class Observer:
    """Watches the namespace and stamps each physical event of the handover once."""

    def __init__(self, api: Any) -> None:
        self.dyn = dynamic.DynamicClient(api)
        self.seen: Dict[str, float] = {}
        self.stop = threading.Event()
        self.threads: List[threading.Thread] = []
        self.state: Dict[str, Dict[str, Any]] = {"pods": {}, "workloads": {}}

    def mark(self, event: str) -> None:
        self.seen.setdefault(event, time.monotonic())

    def _watch(self, api_version: str, kind: str, handle: Callable[[str, Dict[str, Any]], None]) -> None:
        res = self.dyn.resources.get(api_version=api_version, kind=kind)
        rv = res.get(namespace=NS).metadata.resourceVersion
        while not self.stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(res.get, namespace=NS, resource_version=rv, timeout_seconds=5,
                                   serialize=False):
                    obj = ev["raw_object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    handle(ev["type"], obj)
                    if self.stop.is_set():
                        break
            except Exception:  # a 410 or a dropped watch: start over from a fresh list
                rv = res.get(namespace=NS).metadata.resourceVersion
            finally:
                w.stop()

    def on_isvc(self, kind: str, obj: Dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name == OUT and isvc.is_stopped(obj):
            self.mark("stop_written")

    def on_deployment(self, kind: str, obj: Dict[str, Any]) -> None:
        if obj["metadata"]["name"] == OUT + "-predictor" and kind == "DELETED":
            self.mark("deployment_gone")

    def on_pod(self, kind: str, obj: Dict[str, Any]) -> None:
        model = (obj["metadata"].get("labels") or {}).get(isvc.ISVC_LABEL)
        pods = self.state["pods"]
        if kind == "DELETED":
            pods.pop(obj["metadata"]["name"], None)
        else:
            pods[obj["metadata"]["name"]] = obj
        if model == OUT and "stop_written" in self.seen and not any(
                (p["metadata"].get("labels") or {}).get(isvc.ISVC_LABEL) == OUT for p in pods.values()):
            self.mark("pods_gone")
        if model == INC and kind != "DELETED" and "stop_written" in self.seen:
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            if not spec.get("schedulingGates"):
                self.mark("ungated")
            if spec.get("nodeName"):
                self.mark("bound")
            if status.get("phase") == "Running":
                self.mark("running")
            if isvc.pod_ready(obj):
                self.mark("ready")

    def on_workload(self, kind: str, obj: Dict[str, Any]) -> None:
        owner = next((r["name"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("kind") == "Pod"), "")
        if "stop_written" not in self.seen:
            return
        if owner.startswith(OUT + "-predictor-") and kind == "DELETED":
            self.mark("workload_gone")
        conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}
        if owner.startswith(INC + "-predictor-") and conds.get("Admitted") == "True":
            self.mark("incoming_admitted")

    def start(self) -> None:
        for args in (("serving.kserve.io/v1beta1", "InferenceService", self.on_isvc),
                     ("apps/v1", "Deployment", self.on_deployment), ("v1", "Pod", self.on_pod),
                     (KUEUE, "Workload", self.on_workload)):
            t = threading.Thread(target=self._watch, args=args, daemon=True)
            t.start()
            self.threads.append(t)
        time.sleep(1.0)  # the watches are open before anything happens

    def wait(self, events: tuple, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not all(e in self.seen for e in events) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()


def client(api: Any) -> Client:
    return Client(dynamic.DynamicClient(api), testbed.API)


def set_stopped(c: Client, name: str, stopped: bool) -> None:
    c.patch(isvc.API_VERSION, isvc.KIND, name, NS, isvc.stop_patch(stopped))


def to_step2(c: Client) -> None:
    """mistral-3-bf16 and -int4 on, devstral-2 on and pending: the state step 3 starts from."""
    set_stopped(c, INC, True)
    set_stopped(c, OUT, False)
    models = [OUT, RES, INC]
    gpu_view.await_states(c, KUEUE, NS, [CQ], models, {OUT: "ON", RES: "ON", INC: "OFF"}, 180)
    set_stopped(c, INC, False)
    gpu_view.await_states(c, KUEUE, NS, [CQ], models, {INC: "PENDING"}, 60)
    time.sleep(0.5)


def variant_cmd(name: str) -> List[str]:
    if name == "module":
        args = {"namespace": NS, "outgoing": OUT, "incoming": INC, "resident": [RES], "cluster_queues": [CQ],
                "wait_timeout": 120, "kubeconfig": str(testbed.KUBECONFIG)}
        return [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-e",
                f"ansible_python_interpreter={sys.executable}", "-m", "rhoai.gpuaas.gpu_handover", "-a", json.dumps(args)]
    if name == "playbook":
        return [str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/handover.yml", "-e", "handover_step=3"]
    delay = {"poll5": 5, "poll1": 1}[name]
    return [str(BIN / "ansible-playbook"), "-i", "inventories/local", "benchmarks/polling_idiom.yml",
            "-e", f"poll_delay={delay}"]


def one_run(api: Any, name: str) -> Dict[str, Any]:
    c = client(api)
    to_step2(c)
    observer = Observer(api)
    observer.start()
    out = run(variant_cmd(name), json_out=(name == "module"))
    observer.wait(EVENTS if name != "module" else EVENTS[:5])
    seen = {e: round(t - observer.seen["stop_written"], 3) for e, t in observer.seen.items()}
    result: Dict[str, Any] = {"variant": name, "physical": seen,
                              "total": round(out["end"] - out["start"], 3),
                              "returned_after_stop": round(out["end"] - observer.seen["stop_written"], 3)}
    goal = "incoming_admitted" if name == "module" else "ready"
    result["detection_lag"] = round(out["end"] - observer.seen[goal], 3)
    if name == "module":
        module = json.loads(out["stdout"])["plays"][0]["tasks"][0]["hosts"]["localhost"]
        result["module_timeline"] = module["timeline"]
        result["module_elapsed"] = module["elapsed"]
    return result


def whole(api: Any, unrelated: int) -> Dict[str, Any]:
    """The three-step handover.yml from the baseline; ``unrelated`` Workloads in the namespace first."""
    c = client(api)
    wl = dynamic.DynamicClient(api).resources.get(api_version=KUEUE, kind="Workload")
    names = []
    for i in range(unrelated):
        name = f"bench-unrelated-{i}"
        wl.create(namespace=NS, body={"apiVersion": KUEUE, "kind": "Workload",
                                      "metadata": {"name": name, "labels": {"bench": "unrelated"}},
                                      "spec": {"queueName": "no-such-queue", "podSets": [{
                                          "name": "main", "count": 1, "template": {"spec": {"containers": [{
                                              "name": "c", "image": "registry.invalid/x:1",
                                              "resources": {"requests": {"cpu": "1m"}}}]}}}]}})
        names.append(name)
    try:
        set_stopped(c, INC, True)
        set_stopped(c, OUT, False)
        gpu_view.await_states(c, KUEUE, NS, [CQ], [OUT, RES, INC], {OUT: "ON", RES: "ON", INC: "OFF"}, 180)
        out = run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/handover.yml"])
        return {"unrelated_workloads": unrelated, "total": round(out["end"] - out["start"], 3)}
    finally:
        if names:
            wl.delete(namespace=NS, label_selector="bench=unrelated")


def stats(values: List[float]) -> Dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    by: Dict[str, List[Dict[str, Any]]] = {}
    for r in runs:
        by.setdefault(r["variant"], []).append(r)
    floor_admit = [r["physical"]["incoming_admitted"] for r in runs if "incoming_admitted" in r["physical"]]
    floor_ready = [r["physical"]["ready"] for r in runs if "ready" in r["physical"]]
    out: Dict[str, Any] = {"floor_admitted": stats(floor_admit), "floor_ready": stats(floor_ready) if floor_ready else None}
    for name, rs in by.items():
        out[name] = {"total": stats([r["total"] for r in rs]), "detection_lag": stats([r["detection_lag"] for r in rs]),
                     "returned_after_stop": stats([r["returned_after_stop"] for r in rs])}
    for name in by:
        floor = out["floor_admitted"]["median"] if name == "module" else (out["floor_ready"] or {}).get("median")
        out[name]["total_over_floor"] = round(out[name]["total"]["median"] / floor, 2) if floor else None
        for poll in ("poll5", "poll1"):
            if poll in out and name not in ("poll5", "poll1"):
                out[name][f"total_vs_{poll}"] = round(out[name]["total"]["median"] / out[poll]["total"]["median"], 2)
    return out


def table(summary: Dict[str, Any], whole_runs: List[Dict[str, Any]]) -> str:
    lines = ["| variant | step total (median / max) | returned after the stop | detection lag (median / max) | total / floor | vs poll5 | vs poll1 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in ("module", "playbook", "poll5", "poll1"):
        if name not in summary:
            continue
        s = summary[name]
        lines.append("| {0} | {1[median]} / {1[max]} s | {2[median]} s | {3[median]} / {3[max]} s | {4} | {5} | {6} |".format(
            name, s["total"], s["returned_after_stop"], s["detection_lag"], s.get("total_over_floor"),
            s.get("total_vs_poll5", "-"), s.get("total_vs_poll1", "-")))
    lines.append("")
    lines.append("Floor (physical, after the stop): admitted {0[median]} s (max {0[max]}), Ready {1}.".format(
        summary["floor_admitted"], "{0[median]} s (max {0[max]})".format(summary["floor_ready"]) if summary["floor_ready"] else "-"))
    for w in whole_runs:
        lines.append("Whole handover.yml (3 steps, boards) with {0} unrelated Workloads: {1} s.".format(
            w["unrelated_workloads"], w["total"]))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--variants", default="module,playbook,poll5,poll1")
    parser.add_argument("--whole", action="store_true", help="also time the three-step handover.yml")
    parser.add_argument("--unrelated", type=int, default=1000)
    parser.add_argument("--no-deploy", action="store_true", help="the demo is already deployed")
    args = parser.parse_args()
    if not args.no_deploy:
        run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/provision.yml"])
        # the predictors read the weights from S3: without them every model fails to start
        run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/upload_model.yml"])
        run([str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/deploy.yml",
             "-e", "serving_enforce_state=true"])
    api = config.new_client_from_config(str(testbed.KUBECONFIG))
    variants = args.variants.split(",")
    runs = []
    for i in range(args.runs):
        for name in variants[i % len(variants):] + variants[:i % len(variants)]:
            runs.append(one_run(api, name))
            print(json.dumps(runs[-1]), file=sys.stderr)
    whole_runs = [whole(api, 0), whole(api, args.unrelated)] if args.whole else []
    summary = summarize(runs)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / time.strftime("handover-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps({"runs": runs, "whole": whole_runs, "summary": summary}, indent=1))
    print(table(summary, whole_runs))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
