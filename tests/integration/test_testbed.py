"""Proof that the testbed is real: Kueue admits, gates and hands over GPUs; KServe obeys stop."""
from __future__ import annotations

from typing import Callable

import pytest
from kubernetes import client

import _kueue_objects as ko
from _poll import wait_for
from conftest import new_namespace


@pytest.fixture
def queue(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str], kueue_flavors: list[str]):
    """The demo's 4+1 GPU ClusterQueue, LocalQueue `ko.QUEUE` and runtime for `namespace`."""
    with ko.queues(k8s, namespace) as cq:
        yield cq
        client.AppsV1Api(k8s).delete_collection_namespaced_deployment(namespace)
        wait_for("pods gone", lambda: not client.CoreV1Api(k8s).list_namespaced_pod(namespace).items)


def pods_of(k8s: client.ApiClient, ns: str, app: str) -> list[client.V1Pod]:
    return client.CoreV1Api(k8s).list_namespaced_pod(ns, label_selector=f"app={app}").items


def running(k8s: client.ApiClient, ns: str, app: str) -> list[client.V1Pod]:
    return [p for p in pods_of(k8s, ns, app) if p.status.phase == "Running"]


def workload_of(k8s: client.ApiClient, ns: str, pod: client.V1Pod) -> dict | None:
    res = ko.dynamic(k8s).resources.get(api_version=ko.KUEUE, kind="Workload")
    items = res.get(namespace=ns, label_selector=f"kueue.x-k8s.io/job-uid={pod.metadata.uid}").to_dict()["items"]
    return items[0] if items else None


def condition(obj: dict, ctype: str) -> dict | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), None)


def explain(k8s: client.ApiClient, ns: str) -> Callable[[], str]:
    """The pods, Workloads and GPU nodes as a failing wait saw them last."""
    def describe() -> str:
        core = client.CoreV1Api(k8s)
        lines = []
        for pod in core.list_namespaced_pod(ns).items:
            gates = [g.name for g in pod.spec.scheduling_gates or []]
            conds = [(c.type, c.status, c.reason, c.message) for c in pod.status.conditions or []]
            lines.append(f"pod {pod.metadata.name}: phase={pod.status.phase} node={pod.spec.node_name} "
                         f"gates={gates} conditions={conds}")
        res = ko.dynamic(k8s).resources.get(api_version=ko.KUEUE, kind="Workload")
        for wl in res.get(namespace=ns).to_dict()["items"]:
            conds = [(c["type"], c["status"], c.get("reason"), c.get("message"))
                     for c in wl.get("status", {}).get("conditions", [])]
            lines.append(f"workload {wl['metadata']['name']}: {conds}")
        for node in core.list_node().items:
            ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), None)
            taints = [(t.key, t.effect) for t in node.spec.taints or []]
            lines.append(f"node {node.metadata.name}: ready={ready} unschedulable={node.spec.unschedulable} "
                         f"taints={taints} allocatable.gpu={(node.status.allocatable or {}).get(ko.GPU)}")
        for pod in core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items:
            lines.append(f"bound pod {pod.metadata.namespace}/{pod.metadata.name} on {pod.spec.node_name}: "
                         f"{pod.status.phase}")
        return "\n".join(lines)
    return describe


def test_kueue_admits_gates_and_hands_over(k8s: client.ApiClient, namespace: str, queue: str) -> None:
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment(namespace, ko.deployment("big-a", namespace, gpus=4))
    (pod_a,) = wait_for("big-a Running", lambda: running(k8s, namespace, "big-a"),
                        explain=explain(k8s, namespace))
    node = client.CoreV1Api(k8s).read_node(pod_a.spec.node_name)
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "g6.12xlarge"
    assert node.status.allocatable[ko.GPU] == "4"
    wl_a = wait_for("big-a workload", lambda: workload_of(k8s, namespace, pod_a))
    assert condition(wl_a, "Admitted")["status"] == "True"
    assert wl_a["status"]["admission"]["clusterQueue"] == queue

    apps.create_namespaced_deployment(namespace, ko.deployment("big-b", namespace, gpus=4))
    (gated,) = wait_for("big-b pod", lambda: pods_of(k8s, namespace, "big-b"))
    wl_b = wait_for("big-b evaluated", lambda: (w := workload_of(k8s, namespace, gated)) and
                    condition(w, "QuotaReserved") and w)
    reserved = condition(wl_b, "QuotaReserved")
    assert (reserved["status"], reserved["reason"]) == ("False", "Pending")
    assert reserved["message"].startswith("couldn't assign flavors to pod set main: ")
    assert "insufficient unused quota for nvidia.com/gpu in flavor nvidia-l4-4gpu, 4 more needed" in reserved["message"]
    gated = client.CoreV1Api(k8s).read_namespaced_pod(gated.metadata.name, namespace)
    assert "kueue.x-k8s.io/admission" in [g.name for g in gated.spec.scheduling_gates or []]
    scheduled = next(c for c in gated.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "SchedulingGated")

    apps.delete_namespaced_deployment("big-a", namespace)
    wait_for("big-b admitted", lambda: (w := workload_of(k8s, namespace, gated)) and
             (c := condition(w, "Admitted")) and c["status"] == "True", explain=explain(k8s, namespace))
    wait_for("big-b Running", lambda: running(k8s, namespace, "big-b"), explain=explain(k8s, namespace))


def test_kserve_raw_deployment_and_stop(k8s: client.ApiClient, namespace: str, queue: str) -> None:
    body = ko.inference_service("small", namespace, gpus=1)
    body["metadata"]["labels"]["team"] = "it"
    ko.create(k8s, body)
    apps = client.AppsV1Api(k8s)

    def predictor() -> client.V1Deployment | None:
        return next((d for d in apps.list_namespaced_deployment(namespace).items
                     if d.metadata.name == "small-predictor"), None)
    deployment = wait_for("predictor Deployment", predictor)
    assert deployment.spec.template.metadata.labels["team"] == "it"
    (pod,) = wait_for("predictor pod", lambda: ko.predictor_pods(k8s, "small", namespace))
    assert pod.metadata.labels["team"] == "it"
    assert pod.metadata.labels[ko.QUEUE_LABEL] == ko.QUEUE

    ko.dynamic(k8s).resources.get(api_version=ko.ISVC, kind="InferenceService").patch(
        name="small", namespace=namespace, content_type="application/merge-patch+json",
        body={"metadata": {"annotations": {ko.STOP: "true"}}})
    wait_for("predictor Deployment deleted", lambda: predictor() is None)
    wait_for("predictor pods gone", lambda: not ko.predictor_pods(k8s, "small", namespace))
    stopped = wait_for("Stopped=True", lambda: (c := condition(ko.isvc(k8s, "small", namespace), "Stopped"))
                       and c["status"] == "True" and c)
    assert stopped["status"] == "True"


def test_pods_on_kwok_nodes_become_ready_again(k8s: client.ApiClient, gpu_nodes: list[str]) -> None:
    """After an outage kube-controller-manager marks the nodes' pods NotReady; they must recover.

    The testbed's own kwok stage (testbed/manifests/kwok-pod-ready-again.yaml) plays the kubelet
    coming back; without it a long-lived testbed kept NotReady predictors after `down`/`up`.
    The namespace is not Kueue-managed: Kueue would gate a pod created bound to its node.
    """
    with new_namespace(k8s, {}) as namespace:
        _pod_ready_again(k8s, namespace, gpu_nodes)


def _pod_ready_again(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str]) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "steady"},
        "spec": {"nodeName": gpu_nodes[1], "tolerations": [ko.TOLERATION],
                 "containers": [{"name": "main", "image": "registry.invalid/vllm:1"}]}})

    def ready() -> str | None:
        pod = core.read_namespaced_pod("steady", namespace)
        return next((c.status for c in pod.status.conditions or [] if c.type == "Ready"), None)
    wait_for("pod Ready", lambda: ready() == "True", explain=explain(k8s, namespace))
    # what the node lifecycle controller writes for the pods of a node that stopped reporting
    core.patch_namespaced_pod_status("steady", namespace, {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}})
    assert ready() == "False"
    wait_for("pod Ready again", lambda: ready() == "True", timeout=30, explain=explain(k8s, namespace))
    pod = core.read_namespaced_pod("steady", namespace)
    assert pod.status.phase == "Running"
    assert next(c for c in pod.status.conditions if c.type == "Ready").reason is None
