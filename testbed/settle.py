"""End-to-end proof that the testbed's controllers act on new objects, not only answer /healthz.

A controller whose watch broke (kube-apiserver restarted) still reports healthy while its
client backs off, for up to a minute; in that time a new namespace has no ServiceAccount,
Kueue's webhook says the namespace does not exist and pods wait for a Workload that never
comes. A throw-away canary goes through every controller instead: a Deployment queued
through Kueue (kube-controller-manager, Kueue's webhook and reconciler, kube-scheduler, kwok
when a node exists) and an InferenceService (KServe). Everything it creates is deleted.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any, Callable, Optional

from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from install import apply

KUEUE = "kueue.x-k8s.io/v1beta2"
ISVC = "serving.kserve.io/v1beta1"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
CANARY_LABEL = "rhoai-gpuaas/testbed-canary"


def _objects(name: str) -> list[dict[str, Any]]:
    """The canary: its own flavor, ClusterQueue, LocalQueue, Deployment, runtime and ISVC."""
    labels = {"app": "canary", QUEUE_LABEL: "canary"}
    pod_spec = {"tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "main", "image": "registry.invalid/pause:1",
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    return [
        {"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": name}},
        {"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": name},
         "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}},
                  "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [
                      {"name": name, "resources": [{"name": "cpu", "nominalQuota": "1"},
                                                   {"name": "memory", "nominalQuota": "1Gi"}]}]}]}},
        {"apiVersion": KUEUE, "kind": "LocalQueue", "metadata": {"name": "canary", "namespace": name},
         "spec": {"clusterQueue": name}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "canary", "namespace": name},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "canary"}},
                  "template": {"metadata": {"labels": labels}, "spec": pod_spec}}},
        {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
         "metadata": {"name": "canary", "namespace": name},
         "spec": {"supportedModelFormats": [{"name": "canary"}],
                  "containers": [{"name": "kserve-container", "image": "registry.invalid/pause:1"}]}},
        # RHOAI's name for raw mode; in a Kueue namespace RHOAI refuses an ISVC without a queue label
        {"apiVersion": ISVC, "kind": "InferenceService",
         "metadata": {"name": "canary", "namespace": name, "labels": {QUEUE_LABEL: "canary"},
                      "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"}},
         "spec": {"predictor": {"model": {"modelFormat": {"name": "canary"}, "runtime": "canary"}}}},
    ]


def _checks(api: client.ApiClient, dyn: DynamicClient, name: str) -> list[tuple[str, Callable[[], bool]]]:
    """(what is awaited and who does it, test) in the order the canary passes through."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    workloads = dyn.resources.get(api_version=KUEUE, kind="Workload")

    def pod() -> Optional[client.V1Pod]:
        pods = core.list_namespaced_pod(name, label_selector="app=canary").items
        return pods[0] if pods else None

    def admitted() -> bool:
        for wl in workloads.get(namespace=name).to_dict()["items"]:
            for cond in wl.get("status", {}).get("conditions", []):
                if cond["type"] == "Admitted" and cond["status"] == "True":
                    return True
        return False

    def scheduled() -> bool:
        p = pod()
        if p is None or p.spec.scheduling_gates:
            return False
        if p.spec.node_name:
            return True
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in p.status.conditions or [])

    def running_if_bound() -> bool:
        p = pod()
        return p is not None and (not p.spec.node_name or p.status.phase == "Running")

    def predictor() -> bool:
        return any(d.metadata.name == "canary-predictor" for d in apps.list_namespaced_deployment(name).items)

    return [
        ("kube-controller-manager: the namespace's ServiceAccount",
         lambda: bool(core.list_namespaced_service_account(name).items)),
        ("kube-controller-manager and Kueue's webhook: the Deployment's pod", lambda: pod() is not None),
        ("Kueue: the pod's Workload admitted", admitted),
        ("kube-scheduler: the ungated pod bound or reported Unschedulable", scheduled),
        ("kwok: the bound pod Running", running_if_bound),
        ("KServe: the InferenceService's predictor Deployment", predictor),
    ]


def _delete(dyn: DynamicClient, name: str) -> None:
    """Namespace first (its Workloads release the queue), then the cluster-scoped queue objects."""
    with contextlib.suppress(client.ApiException):
        client.CoreV1Api(dyn.client).delete_namespace(name, propagation_policy="Background")
    for kind in ("ClusterQueue", "ResourceFlavor"):
        with contextlib.suppress(NotFoundError, client.ApiException):
            dyn.resources.get(api_version=KUEUE, kind=kind).delete(name=name)


def wait_settled(api: client.ApiClient, timeout: float = 90.0) -> dict[str, float]:
    """Pass a canary through every controller; return seconds until each step was seen.

    Raises TimeoutError naming the first step not reached, so a stale controller is named.
    """
    dyn = DynamicClient(api)
    name = f"testbed-canary-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    deadline = t0 + timeout
    seen: dict[str, float] = {}
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name, "labels": {
        "kueue.openshift.io/managed": "true", CANARY_LABEL: "true"}}})
    try:
        for obj in _objects(name):
            apply(dyn, obj)
        for what, check in _checks(api, dyn, name):
            while not _quietly(check):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"testbed not settled after {timeout:.0f}s: still waiting for {what}")
                time.sleep(0.2)
            seen[what] = round(time.monotonic() - t0, 1)
    finally:
        _delete(dyn, name)
    return seen


def _quietly(check: Callable[[], bool]) -> bool:
    """A check that hits a transient API error has simply not passed yet."""
    try:
        return check()
    except (client.ApiException, NotFoundError, OSError):
        return False


def remove_leftovers(api: client.ApiClient) -> None:
    """Delete canaries an interrupted run left behind."""
    dyn = DynamicClient(api)
    for ns in client.CoreV1Api(api).list_namespace(label_selector=CANARY_LABEL).items:
        _delete(dyn, ns.metadata.name)
