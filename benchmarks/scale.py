#!/usr/bin/env python3
"""How the modules' cost grows with the cluster: hundreds of models, a thousand Workloads.

Creates, on the testbed, `--models` InferenceServices (stopped, so KServe runs no pod for them) spread
over `--namespaces` Kueue-managed namespaces, each with its own ClusterQueue and LocalQueue, and
`--workloads` unrelated Workloads spread the same way. Then times, in-process (the modules' own
module_utils, no Ansible start-up) and through Ansible (`ansible -m`), on an empty namespace and on
a full one:

- `gpu_board` of one namespace (all its models);
- `kueue_wait` state=absent on one stopped model;
- `isvc_replicas` state=stopped on one stopped model (nothing to change, the wait returns at once).

The table gives each call's seconds empty and full, the difference, and the cost per object in
the namespace (models + Workloads). Objects are deleted at the end. Nothing asserts a timing.

    .venv/bin/python benchmarks/scale.py --models 100 --workloads 1000 --namespaces 4
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "testbed"))

from kubernetes import client, config, dynamic  # noqa: E402

import testbed  # noqa: E402
from ansible_collections.rhoai.gpuaas.plugins.module_utils import gpu_view, isvc_service, kueue_service  # noqa: E402
from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import Client  # noqa: E402

KUEUE = "kueue.x-k8s.io/v1beta2"
LABEL = "rhoai-gpuaas/bench-scale"
BIN = Path(sys.executable).parent


def ensure(dyn: dynamic.DynamicClient, obj: Dict[str, Any]) -> None:
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    try:
        res.create(body=obj, namespace=obj["metadata"].get("namespace"))
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def populate(dyn: dynamic.DynamicClient, namespaces: List[str], models: int, workloads: int) -> None:
    core = client.CoreV1Api(dyn.client)
    for ns in namespaces:
        core.create_namespace({"metadata": {"name": ns, "labels": {LABEL: "true", "kueue.openshift.io/managed": "true"}}})
        ensure(dyn, {"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": ns, "labels": {LABEL: "true"}},
                     "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                              "resourceGroups": [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"], "flavors": [
                                  {"name": "nvidia-l4-4gpu", "resources": [
                                      {"name": "cpu", "nominalQuota": "48"}, {"name": "memory", "nominalQuota": "192Gi"},
                                      {"name": "nvidia.com/gpu", "nominalQuota": "4"}]}]}]}})
        ensure(dyn, {"apiVersion": KUEUE, "kind": "LocalQueue", "metadata": {"name": "default", "namespace": ns},
                     "spec": {"clusterQueue": ns}})
        ensure(dyn, {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
                     "metadata": {"name": "vllm-runtime", "namespace": ns},
                     "spec": {"supportedModelFormats": [{"name": "vLLM", "autoSelect": True}],
                              "containers": [{"name": "kserve-container", "image": "registry.invalid/vllm:1"}]}})
    for i in range(models):
        ns = namespaces[i % len(namespaces)]
        ensure(dyn, {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                     "metadata": {"name": f"model-{i}", "namespace": ns,
                                  "labels": {"kueue.x-k8s.io/queue-name": "default"},
                                  "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment",
                                                  "serving.kserve.io/stop": "true"}},
                     "spec": {"predictor": {"model": {"modelFormat": {"name": "vLLM"}, "runtime": "vllm-runtime",
                                                      "resources": {"requests": {"nvidia.com/gpu": "1"},
                                                                    "limits": {"nvidia.com/gpu": "1"}}}}}})
    for i in range(workloads):
        ns = namespaces[i % len(namespaces)]
        ensure(dyn, {"apiVersion": KUEUE, "kind": "Workload", "metadata": {"name": f"job-{i}", "namespace": ns},
                     "spec": {"queueName": "default", "podSets": [{"name": "main", "count": 1, "template": {"spec": {
                         "containers": [{"name": "c", "image": "registry.invalid/x:1",
                                         "resources": {"requests": {"cpu": "100"}}}]}}}]}})


def cleanup(dyn: dynamic.DynamicClient) -> None:
    core = client.CoreV1Api(dyn.client)
    for ns in core.list_namespace(label_selector=LABEL).items:
        core.delete_namespace(ns.metadata.name)
    dyn.resources.get(api_version=KUEUE, kind="ClusterQueue").delete(label_selector=LABEL)
    while core.list_namespace(label_selector=LABEL).items:
        time.sleep(1)


def timed(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.monotonic()
        fn()
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def ansible(module: str, args: Dict[str, Any]) -> None:
    args = dict(args, kubeconfig=str(testbed.KUBECONFIG))
    proc = subprocess.run([str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", "-m", module, "-a", json.dumps(args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-1000:])


def calls(c: Client, ns: str, model: str) -> Dict[str, Dict[str, Callable[[], Any]]]:
    board = {"namespace": ns, "models": None, "cluster_queues": None, "gpu_resource": "nvidia.com/gpu", "title": None,
             "explain": None, "expect": None, "wait": True, "wait_timeout": 60, "kueue_api_version": "v1beta2"}
    wait = {"isvc": model, "pod_selector": None, "workload": None, "namespace": ns, "state": "absent", "wait": True,
            "wait_timeout": 60, "cluster_queue": None, "kueue_api_version": "v1beta2"}
    replicas = {"name": model, "namespace": ns, "replicas": None, "state": "stopped", "strategy": "auto", "wait": True,
                "wait_for": None, "wait_timeout": 60, "kueue_api_version": "v1beta2"}
    return {
        "gpu_board": {"in-process": lambda: gpu_view.board(c, board),
                      "ansible": lambda: ansible("rhoai.gpuaas.gpu_board", {"namespace": ns})},
        "kueue_wait": {"in-process": lambda: kueue_service.follow(c, wait, lambda m: None),
                       "ansible": lambda: ansible("rhoai.gpuaas.kueue_wait", {"namespace": ns, "isvc": model,
                                                                             "state": "absent"})},
        "isvc_replicas": {"in-process": lambda: isvc_service.apply_replicas(c, replicas, False, False, lambda m: None),
                          "ansible": lambda: ansible("rhoai.gpuaas.isvc_replicas", {"namespace": ns, "name": model,
                                                                                   "state": "stopped"})},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    api = config.new_client_from_config(str(testbed.KUBECONFIG))
    dyn = dynamic.DynamicClient(api)
    c = Client(dyn, testbed.API)
    cleanup(dyn)
    results: Dict[str, Any] = {"models": args.models, "workloads": args.workloads, "namespaces": args.namespaces}
    try:
        populate(dyn, ["bench-empty"], 1, 0)
        empty = {tool: {how: timed(fn, args.repeat) for how, fn in ways.items()}
                 for tool, ways in calls(c, "bench-empty", "model-0").items()}
        spaces = [f"bench-full-{i}" for i in range(args.namespaces)]
        populate(dyn, spaces, args.models, args.workloads)
        full = {tool: {how: timed(fn, args.repeat) for how, fn in ways.items()}
                for tool, ways in calls(c, spaces[0], "model-0").items()}
    finally:
        cleanup(dyn)
    per_ns = args.models // args.namespaces + args.workloads // args.namespaces
    results["objects_in_the_namespace"] = per_ns
    rows = ["| call | how | empty namespace | full namespace ({0} objects) | difference | per object |".format(per_ns),
            "| --- | --- | --- | --- | --- | --- |"]
    for tool in empty:
        for how in empty[tool]:
            delta = full[tool][how] - empty[tool][how]
            results.setdefault("calls", []).append({"call": tool, "how": how, "empty": round(empty[tool][how], 3),
                                                    "full": round(full[tool][how], 3), "delta": round(delta, 3)})
            rows.append("| {0} | {1} | {2:.3f} s | {3:.3f} s | {4:+.3f} s | {5:.2f} ms |".format(
                tool, how, empty[tool][how], full[tool][how], delta, 1000 * delta / per_ns))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / time.strftime("scale-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(results, indent=1))
    print("\n".join(rows))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
