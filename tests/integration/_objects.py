"""Builders for the objects the demo runs on, shaped as in ../shared/reference/platform.md."""
from __future__ import annotations

from typing import Any

GPU = "nvidia.com/gpu"
TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
# flavor name -> (instance type, gpu, cpu, memory) as in the demo's real quota
FLAVORS = {"nvidia-l4-1gpu": ("g6.4xlarge", 1, 16, "64Gi"), "nvidia-l4-4gpu": ("g6.12xlarge", 4, 48, "192Gi")}


def resource_flavors(api_version: str = "kueue.x-k8s.io/v1beta2") -> list[dict[str, Any]]:
    return [{"apiVersion": api_version, "kind": "ResourceFlavor", "metadata": {"name": name},
             "spec": {"nodeLabels": {"node.kubernetes.io/instance-type": itype}, "tolerations": [TOLERATION]}}
            for name, (itype, _, _, _) in FLAVORS.items()]


def cluster_queue(name: str, api_version: str = "kueue.x-k8s.io/v1beta2",
                  covered: tuple[str, ...] = ("cpu", "memory", GPU)) -> dict[str, Any]:
    def quota(flavor: str) -> list[dict[str, Any]]:
        _, gpus, cpu, memory = FLAVORS[flavor]
        values = {"cpu": cpu, "memory": memory, GPU: gpus}
        return [{"name": r, "nominalQuota": values.get(r, "100Gi")} for r in covered]
    return {"apiVersion": api_version, "kind": "ClusterQueue", "metadata": {"name": name},
            "spec": {"namespaceSelector": {}, "queueingStrategy": "BestEffortFIFO",
                     "resourceGroups": [{"coveredResources": list(covered),
                                         "flavors": [{"name": f, "resources": quota(f)} for f in FLAVORS]}]}}


def local_queue(name: str, namespace: str, cq: str, api_version: str = "kueue.x-k8s.io/v1beta2") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "LocalQueue", "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterQueue": cq}}


def gpu_resources(gpus: int) -> dict[str, Any]:
    return {"requests": {"cpu": "2", "memory": "8Gi", GPU: str(gpus)}, "limits": {GPU: str(gpus)}}


def deployment(name: str, gpus: int, queue: str = "default") -> dict[str, Any]:
    """A plain GPU Deployment queued through Kueue's deployment integration."""
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {**labels, "kueue.x-k8s.io/queue-name": queue}},
            "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": {**labels, "kueue.x-k8s.io/queue-name": queue}},
                                  "spec": {"containers": [{"name": "main", "image": "registry.invalid/vllm:1",
                                                           "resources": gpu_resources(gpus)}]}}}}


def serving_runtime(name: str = "vllm-runtime") -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime", "metadata": {"name": name},
            "spec": {"supportedModelFormats": [{"name": "vLLM", "autoSelect": True}], "multiModel": False,
                     "containers": [{"name": "kserve-container", "image": "registry.invalid/vllm-openai:1",
                                     "args": ["--port=8080", "--model=/mnt/models",
                                              "--served-model-name={{.Name}}"],
                                     "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}


def inference_service(name: str, gpus: int, queue: str = "default", labels: dict[str, str] | None = None,
                      storage_uri: str | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A raw-mode InferenceService queued through Kueue, with the Recreate strategy."""
    model: dict[str, Any] = {"modelFormat": {"name": "vLLM"}, "runtime": "vllm-runtime",
                             "resources": gpu_resources(gpus)}
    if storage_uri:
        model["storageUri"] = storage_uri
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": queue, **(labels or {})},
                         "annotations": {"serving.kserve.io/deploymentMode": "Standard", **(annotations or {})}},
            "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 1, "deploymentStrategy": {"type": "Recreate"},
                                   "tolerations": [TOLERATION], "model": model}}}
