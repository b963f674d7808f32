"""Proof that the testbed is real: Kueue admits, gates and hands over GPUs; KServe obeys stop."""
from __future__ import annotations

import time
from typing import Any, Callable

import pytest
from kubernetes import client, dynamic

from _objects import (cluster_queue, deployment, inference_service, local_queue, resource_flavors,
                      serving_runtime)

KUEUE = "kueue.x-k8s.io/v1beta2"


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll a cheap read until it returns something truthy (test-side only)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def queue(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str]):
    """Flavors, a 4+1 GPU ClusterQueue and a LocalQueue in `namespace`; removed afterwards."""
    dyn = dynamic.DynamicClient(k8s)
    rf = dyn.resources.get(api_version=KUEUE, kind="ResourceFlavor")
    cq = dyn.resources.get(api_version=KUEUE, kind="ClusterQueue")
    lq = dyn.resources.get(api_version=KUEUE, kind="LocalQueue")
    for flavor in resource_flavors():
        rf.server_side_apply(body=flavor, name=flavor["metadata"]["name"], field_manager="tests")
    cq_name = f"cq-{namespace}"
    cq.create(body=cluster_queue(cq_name, KUEUE))
    lq.create(body=local_queue("default", namespace, cq_name, KUEUE), namespace=namespace)
    yield dyn, cq_name
    client.AppsV1Api(k8s).delete_collection_namespaced_deployment(namespace)
    core = client.CoreV1Api(k8s)
    wait_for("pods gone", lambda: not core.list_namespaced_pod(namespace).items, 60)
    cq.delete(name=cq_name)


def pods_of(k8s: client.ApiClient, ns: str, app: str) -> list[client.V1Pod]:
    return client.CoreV1Api(k8s).list_namespaced_pod(ns, label_selector=f"app={app}").items


def workload_of(dyn: dynamic.DynamicClient, ns: str, pod: client.V1Pod) -> dict | None:
    wl = dyn.resources.get(api_version=KUEUE, kind="Workload")
    items = wl.get(namespace=ns, label_selector=f"kueue.x-k8s.io/job-uid={pod.metadata.uid}").to_dict()["items"]
    return items[0] if items else None


def condition(obj: dict, ctype: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), None)


def test_kueue_admits_gates_and_hands_over(k8s: client.ApiClient, namespace: str, queue) -> None:
    dyn, cq_name = queue
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(namespace, deployment("big-a", gpus=4))
    running = wait_for("big-a Running", lambda: [p for p in pods_of(k8s, namespace, "big-a")
                                                 if p.status.phase == "Running"])
    node = client.CoreV1Api(k8s).read_node(running[0].spec.node_name)
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "g6.12xlarge"
    assert node.status.allocatable["nvidia.com/gpu"] == "4"
    wl_a = wait_for("big-a workload", lambda: workload_of(dyn, namespace, running[0]))
    assert condition(wl_a, "Admitted")["status"] == "True"
    assert wl_a["status"]["admission"]["clusterQueue"] == cq_name

    apps.create_namespaced_deployment(namespace, deployment("big-b", gpus=4))
    gated = wait_for("big-b pod", lambda: pods_of(k8s, namespace, "big-b"))[0]
    wl_b = wait_for("big-b pending", lambda: (w := workload_of(dyn, namespace, gated)) and
                    condition(w, "QuotaReserved") and w)
    reserved = condition(wl_b, "QuotaReserved")
    assert reserved["status"] == "False" and reserved["reason"] == "Pending"
    assert "insufficient unused quota for nvidia.com/gpu in flavor nvidia-l4-4gpu" in reserved["message"]
    gated = client.CoreV1Api(k8s).read_namespaced_pod(gated.metadata.name, namespace)
    assert "kueue.x-k8s.io/admission" in [g.name for g in gated.spec.scheduling_gates or []]
    scheduled = next(c for c in gated.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "SchedulingGated")

    apps.delete_namespaced_deployment("big-a", namespace)
    admitted = wait_for("big-b admitted", lambda: (w := workload_of(dyn, namespace, gated)) and
                        (c := condition(w, "Admitted")) and c["status"] == "True", 60)
    assert admitted
    wait_for("big-b Running", lambda: [p for p in pods_of(k8s, namespace, "big-b") if p.status.phase == "Running"])


def test_kserve_raw_deployment_and_stop(k8s: client.ApiClient, namespace: str, queue) -> None:
    dyn, _ = queue
    sr = dyn.resources.get(api_version="serving.kserve.io/v1alpha1", kind="ServingRuntime")
    isvc = dyn.resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")
    sr.create(body=serving_runtime(), namespace=namespace)
    isvc.create(body=inference_service("small", gpus=1, labels={"team": "it"}), namespace=namespace)
    apps = client.AppsV1Api(k8s)
    dep = wait_for("predictor Deployment", lambda: next(
        (d for d in apps.list_namespaced_deployment(namespace).items if d.metadata.name == "small-predictor"), None))
    assert dep.spec.template.metadata.labels["team"] == "it"
    pod = wait_for("predictor pod", lambda: client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector="serving.kserve.io/inferenceservice=small").items)[0]
    assert pod.metadata.labels["kueue.x-k8s.io/queue-name"] == "default"

    isvc.patch(name="small", namespace=namespace, content_type="application/merge-patch+json",
               body={"metadata": {"annotations": {"serving.kserve.io/stop": "true"}}})
    wait_for("predictor Deployment deleted", lambda: not any(
        d.metadata.name == "small-predictor" for d in apps.list_namespaced_deployment(namespace).items))
    stopped = wait_for("Stopped condition", lambda: (c := condition(
        isvc.get(name="small", namespace=namespace).to_dict(), "Stopped")) and c["status"] == "True")
    assert stopped
