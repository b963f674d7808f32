# -*- coding: utf-8 -*-
"""Object builders for unit tests, shaped as the API serves them (see platform.md)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

Obj = Dict[str, Any]
NS = "private-ai"
KUEUE = "kueue.x-k8s.io/v1beta2"
ISVC = "serving.kserve.io/v1beta1"
GPU = "nvidia.com/gpu"
PENDING_4 = ("couldn't assign flavors to pod set main: flavor nvidia-l4-1gpu doesn't match node affinity, "
             "insufficient unused quota for nvidia.com/gpu in flavor nvidia-l4-4gpu, 4 more needed")


def isvc(name: str, gpus: int = 4, stopped: bool = False, ready: bool = True, queue: str = "default",
         ns: str = NS) -> Obj:
    conditions = [{"type": "Ready", "status": "True" if ready and not stopped else "False"}]
    if stopped:
        conditions.append({"type": "Stopped", "status": "True"})
    return {
        "apiVersion": ISVC, "kind": "InferenceService",
        "metadata": {"name": name, "namespace": ns, "generation": 1, "labels": {"kueue.x-k8s.io/queue-name": queue},
                     "annotations": {"serving.kserve.io/stop": "true" if stopped else "false"}},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "model": {
            "modelFormat": {"name": "vLLM"},
            "resources": {"requests": {"cpu": "8", "memory": "48Gi", GPU: str(gpus)},
                          "limits": {"cpu": "8", "memory": "48Gi", GPU: str(gpus)}}}}},
        "status": {"conditions": conditions},
    }


def pod(model: str, suffix: str = "abc12", gpus: int = 4, gated: bool = False, node: Optional[str] = "gpu-node",
        ready: bool = True, terminating: bool = False, waiting: Optional[str] = None, restarts: int = 0,
        last_words: str = "", ns: str = NS) -> Obj:
    name = "{0}-predictor-{1}".format(model, suffix)
    meta: Obj = {"name": name, "namespace": ns, "uid": "uid-" + name,
                 "labels": {"serving.kserve.io/inferenceservice": model, "component": "predictor"}}
    if terminating:
        meta["deletionTimestamp"] = "2026-12-02T12:00:00Z"
    cstatus: Obj = {"name": "kserve-container", "restartCount": restarts, "ready": ready,
                    "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}
    if last_words:
        cstatus["lastState"] = {"terminated": {"exitCode": 1, "message": last_words}}
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"nodeName": None if gated else node,
                 "schedulingGates": [{"name": "kueue.x-k8s.io/admission"}] if gated else [],
                 "containers": [{"name": "kserve-container", "resources": {"requests": {GPU: str(gpus)}}}]},
        "status": {"phase": "Pending" if gated else "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready and not gated else "False"}],
                   "containerStatuses": [] if gated else [cstatus]},
    }


def workload(for_pod: Obj, admitted_to: Optional[str] = None, pending: Optional[str] = None, cq: str = "rhoai-main-queue",
             gpus: int = 4) -> Obj:
    """A pod's Workload: admitted to a flavor, refused with ``pending``, or not assessed yet (neither)."""
    pmeta = for_pod["metadata"]
    conditions: List[Obj] = []
    status: Obj = {"conditions": conditions}
    if admitted_to:
        conditions += [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved",
                        "message": "Quota reserved in ClusterQueue " + cq},
                       {"type": "Admitted", "status": "True", "reason": "Admitted"}]
        status["admission"] = {"clusterQueue": cq, "podSetAssignments": [{
            "name": "main", "flavors": {GPU: admitted_to, "cpu": admitted_to, "memory": admitted_to},
            "resourceUsage": {GPU: str(gpus)}}]}
    elif pending:
        conditions.append({"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": pending})
    return {
        "apiVersion": KUEUE, "kind": "Workload",
        "metadata": {"name": "pod-{0}-1a2b3".format(pmeta["name"]), "namespace": pmeta["namespace"],
                     "labels": {"kueue.x-k8s.io/job-uid": pmeta["uid"]},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": pmeta["name"], "uid": pmeta["uid"]}]},
        "spec": {"queueName": "default"},
        "status": status,
    }


def cluster_queue(name: str = "rhoai-main-queue", used: Optional[Dict[str, int]] = None) -> Obj:
    """The demo's quota: 1 GPU in nvidia-l4-1gpu, 4 in nvidia-l4-4gpu; ``used`` per flavor."""
    used = used or {}
    flavors = [("nvidia-l4-1gpu", 1), ("nvidia-l4-4gpu", 4)]
    return {
        "apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": name},
        "spec": {"resourceGroups": [{"coveredResources": ["cpu", "memory", GPU], "flavors": [
            {"name": f, "resources": [{"name": GPU, "nominalQuota": str(n)}, {"name": "cpu", "nominalQuota": "48"},
                                      {"name": "memory", "nominalQuota": "192Gi"}]} for f, n in flavors]}]},
        "status": {"flavorsUsage": [{"name": f, "resources": [{"name": GPU, "total": str(used.get(f, 0))}]}
                                    for f, _nominal in flavors if used.get(f)]},
    }


def local_queue(name: str = "default", cq: str = "rhoai-main-queue", ns: str = NS) -> Obj:
    return {"apiVersion": KUEUE, "kind": "LocalQueue", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterQueue": cq}}


def baseline() -> List[Obj]:
    """The demo after step 2: bf16 on (4-GPU flavor), int4 on (1-GPU flavor), devstral-2 on and pending."""
    bf16, int4, dev = pod("mistral-3-bf16"), pod("mistral-3-int4", gpus=1), pod("devstral-2", gated=True, ready=False)
    return [
        cluster_queue(used={"nvidia-l4-4gpu": 4, "nvidia-l4-1gpu": 1}), local_queue(),
        isvc("mistral-3-bf16"), isvc("mistral-3-int4", gpus=1), isvc("devstral-2", ready=False),
        bf16, int4, dev,
        workload(bf16, admitted_to="nvidia-l4-4gpu"), workload(int4, admitted_to="nvidia-l4-1gpu", gpus=1),
        workload(dev, pending=PENDING_4),
    ]
