"""Kueue and KServe objects for the kueue_wait / isvc_replicas tests (shapes as in platform.md).

Every test gets its own ClusterQueue (cluster-scoped, named after the test namespace and
selecting only it) with the demo's 4+1 GPU quota, so tests cannot steal each other's quota.
The ResourceFlavors are shared (same names as the demo) and created when missing.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from _labels import TEST_LABEL

KUEUE = "kueue.x-k8s.io/v1beta2"
ISVC = "serving.kserve.io/v1beta1"
GPU = "nvidia.com/gpu"
STOP = "serving.kserve.io/stop"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The tests' own LocalQueue: RHOAI's operator (testbed/rhoai_sim.py) already created LocalQueue
# `default` in every Kueue namespace, pointing at its ClusterQueue, and that cannot be changed.
QUEUE = "gpu"
TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
# flavor -> (instance type, gpus, cpu, memory): the demo's real quota, 4 + 1 GPUs.
FLAVORS = {"nvidia-l4-1gpu": ("g6.4xlarge", 1, 16, "64Gi"), "nvidia-l4-4gpu": ("g6.12xlarge", 4, 48, "192Gi")}
COVERED = ("cpu", "memory", GPU)


def dynamic(k8s: client.ApiClient) -> DynamicClient:
    return DynamicClient(k8s)


def create(k8s: client.ApiClient, obj: dict[str, Any], exist_ok: bool = False) -> None:
    res = dynamic(k8s).resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    try:
        res.create(body=obj, namespace=obj["metadata"].get("namespace"))
    except ConflictError:
        if not exist_ok:
            raise


def get(k8s: client.ApiClient, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
    res = dynamic(k8s).resources.get(api_version=api_version, kind=kind)
    try:
        return res.get(name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return None


def delete(k8s: client.ApiClient, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
    res = dynamic(k8s).resources.get(api_version=api_version, kind=kind)
    with contextlib.suppress(NotFoundError):
        res.delete(name=name, namespace=namespace)


def resource_flavors() -> list[dict[str, Any]]:
    return [{"apiVersion": KUEUE, "kind": "ResourceFlavor", "metadata": {"name": name, "labels": {TEST_LABEL: "true"}},
             "spec": {"nodeLabels": {"node.kubernetes.io/instance-type": itype}, "tolerations": [TOLERATION]}}
            for name, (itype, _, _, _) in FLAVORS.items()]


def cluster_queue(name: str, namespace: str) -> dict[str, Any]:
    """4 GPUs in nvidia-l4-4gpu + 1 in nvidia-l4-1gpu; covers cpu, memory, nvidia.com/gpu only."""
    def quota(flavor: str) -> list[dict[str, Any]]:
        _, gpus, cpu, memory = FLAVORS[flavor]
        return [{"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": memory},
                {"name": GPU, "nominalQuota": gpus}]
    return {"apiVersion": KUEUE, "kind": "ClusterQueue", "metadata": {"name": name, "labels": {TEST_LABEL: "true"}},
            "spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                     "queueingStrategy": "BestEffortFIFO",
                     "resourceGroups": [{"coveredResources": list(COVERED),
                                         "flavors": [{"name": f, "resources": quota(f)} for f in FLAVORS]}]}}


def local_queue(namespace: str, cq: str, name: str = QUEUE) -> dict[str, Any]:
    return {"apiVersion": KUEUE, "kind": "LocalQueue", "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterQueue": cq}}


def deployment(name: str, namespace: str, gpus: int, queue: str = QUEUE) -> dict[str, Any]:
    """A plain GPU Deployment queued through Kueue's deployment integration."""
    labels = {"app": name, QUEUE_LABEL: queue}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": "registry.invalid/vllm:1",
                                                           "resources": {"requests": {"cpu": "2", "memory": "8Gi",
                                                                                      GPU: str(gpus)},
                                                                         "limits": {GPU: str(gpus)}}}]}}}}


def serving_runtime(namespace: str, name: str = "vllm-runtime") -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"supportedModelFormats": [{"name": "vLLM", "autoSelect": True}], "multiModel": False,
                     "containers": [{"name": "kserve-container", "image": "registry.invalid/vllm-openai:1",
                                     "args": ["--port=8080", "--model=/mnt/models", "--served-model-name={{.Name}}"],
                                     "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}


def inference_service(name: str, namespace: str, gpus: int, stopped: bool = False, queue: str = QUEUE,
                      extra_requests: dict[str, str] | None = None) -> dict[str, Any]:
    """Raw-mode ISVC queued through Kueue (queue label), Recreate strategy, GPU request.

    ``RawDeployment`` as RHOAI 3.0 writes it (the testbed maps it to KServe 0.16's ``Standard``).
    """
    annotations = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    if stopped:
        annotations[STOP] = "true"
    requests = {"cpu": "2", "memory": "8Gi", GPU: str(gpus), **(extra_requests or {})}
    return {"apiVersion": ISVC, "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace, "labels": {QUEUE_LABEL: queue},
                         "annotations": annotations},
            "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "deploymentStrategy": {"type": "Recreate"},
                                   "tolerations": [TOLERATION],
                                   "model": {"modelFormat": {"name": "vLLM"}, "runtime": "vllm-runtime",
                                             "resources": {"requests": requests, "limits": {GPU: str(gpus)}}}}}}


def flavors_in_use(k8s: client.ApiClient) -> set[str]:
    """ResourceFlavors some ClusterQueue names (Kueue keeps those from being deleted)."""
    res = dynamic(k8s).resources.get(api_version=KUEUE, kind="ClusterQueue")
    return {flavor["name"] for cq in res.get().to_dict()["items"]
            for group in cq.get("spec", {}).get("resourceGroups", []) for flavor in group.get("flavors", [])}


@contextlib.contextmanager
def flavors(k8s: client.ApiClient) -> Iterator[list[str]]:
    """The demo's ResourceFlavors; those created here are deleted afterwards unless a ClusterQueue uses them."""
    created = []
    try:
        for flavor in resource_flavors():
            if get(k8s, KUEUE, "ResourceFlavor", flavor["metadata"]["name"]) is None:
                create(k8s, flavor)
                created.append(flavor["metadata"]["name"])
        yield list(FLAVORS)
    finally:
        in_use = flavors_in_use(k8s)
        for name in created:
            if name not in in_use:
                delete(k8s, KUEUE, "ResourceFlavor", name)


@contextlib.contextmanager
def queues(k8s: client.ApiClient, namespace: str) -> Iterator[str]:
    """A ClusterQueue over the demo's flavors for this namespace, LocalQueue QUEUE, the runtime.

    The ClusterQueue is deleted afterwards; the rest goes with the namespace. Flavors missing
    here are created (labelled, so the next session removes them); the session fixture
    `kueue_flavors` creates and removes them itself.
    """
    for flavor in resource_flavors():
        create(k8s, flavor, exist_ok=True)
    cq = "cq-" + namespace
    create(k8s, cluster_queue(cq, namespace))
    create(k8s, local_queue(namespace, cq))
    create(k8s, serving_runtime(namespace))
    try:
        yield cq
    finally:
        delete(k8s, KUEUE, "ClusterQueue", cq)


def isvc(k8s: client.ApiClient, name: str, namespace: str) -> dict[str, Any]:
    obj = get(k8s, ISVC, "InferenceService", name, namespace)
    assert obj is not None, f"InferenceService {namespace}/{name} is missing"
    return obj


def predictor_pods(k8s: client.ApiClient, name: str, namespace: str) -> list[Any]:
    selector = f"serving.kserve.io/inferenceservice={name},component=predictor"
    return client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector=selector).items
