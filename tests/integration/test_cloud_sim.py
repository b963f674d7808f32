"""The cloud simulator behaves like machine-api on AWS with the GPU operator installed."""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

from _machinesets import (create_machineset, delete_machinesets, get_machineset, machines_of, nodes_of, scale,
                          unique_name)
from _poll import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def machineset(k8s: client.ApiClient) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(instance_type: str, replicas: int = 0) -> str:
        name = unique_name("sim-" + instance_type.replace(".", "-"))
        create_machineset(k8s, name, instance_type, replicas)
        created.append(name)
        return name
    try:
        yield make
    finally:
        delete_machinesets(k8s, created)


def ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def test_scale_gpu_machineset_up_and_down(k8s: client.ApiClient, machineset: Callable[..., str]) -> None:
    name = machineset("g6.12xlarge")
    wait_for("status of the new MachineSet", lambda: get_machineset(k8s, name).get("status", {}).get("labelSelector"))

    scale(k8s, name, 1)
    nodes = wait_for("a Ready node", lambda: [n for n in nodes_of(k8s, name) if ready(n)])
    node = nodes[0]
    assert node.status.allocatable["nvidia.com/gpu"] == "4"
    assert node.metadata.labels["nvidia.com/gpu.count"] == "4"
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert node.metadata.labels["node.kubernetes.io/instance-type"] == "g6.12xlarge"
    assert node.metadata.labels["node-role.kubernetes.io/gpu"] == ""
    # kube-controller-manager may still hold its own node.kubernetes.io/not-ready taint for a moment
    assert [(t.key, t.effect) for t in node.spec.taints
            if not t.key.startswith("node.kubernetes.io/")] == [("nvidia.com/gpu", "NoSchedule")]

    (machine,) = wait_for("Machine Running", lambda: [m for m in machines_of(k8s, name)
                                                      if m.get("status", {}).get("phase") == "Running"])
    assert machine["status"]["nodeRef"]["name"] == node.metadata.name
    assert machine["status"]["providerStatus"]["instanceState"] == "running"
    assert node.metadata.annotations["machine.openshift.io/machine"] == f"openshift-machine-api/{machine['metadata']['name']}"
    status = wait_for("MachineSet status ready", lambda: (lambda s: s if s.get("readyReplicas") == 1 else None)(
        get_machineset(k8s, name).get("status", {})))
    assert status["replicas"] == status["availableReplicas"] == status["fullyLabeledReplicas"] == 1
    assert status["observedGeneration"] == get_machineset(k8s, name)["metadata"]["generation"]

    scale(k8s, name, 0)
    wait_for("machine and node gone", lambda: not machines_of(k8s, name) and not nodes_of(k8s, name))
    status = get_machineset(k8s, name).get("status", {})
    # machine-api omits zero counters: absent means 0.
    assert "readyReplicas" not in status and "replicas" not in status


def test_unavailable_instance_type_fails_machine(k8s: client.ApiClient, machineset: Callable[..., str],
                                                 cloud_config: Callable[..., Any]) -> None:
    name = machineset("g6.12xlarge")
    with cloud_config(unavailable_instance_types=["g6.12xlarge"]):
        scale(k8s, name, 1)
        (machine,) = wait_for("Machine Failed", lambda: [m for m in machines_of(k8s, name)
                                                         if m.get("status", {}).get("phase") == "Failed"])
        assert machine["status"]["errorReason"] == "CreateError"
        assert "InsufficientInstanceCapacity" in machine["status"]["errorMessage"]
        assert not nodes_of(k8s, name)
        assert not get_machineset(k8s, name).get("status", {}).get("readyReplicas")
    # Capacity is back: a new Machine boots (the failed one stays Failed, as on AWS).
    scale(k8s, name, 2)
    wait_for("the new Machine's node Ready", lambda: [n for n in nodes_of(k8s, name) if ready(n)])
    scale(k8s, name, 1)
    remaining = wait_for("the failed Machine deleted first",
                         lambda: (lambda ms: ms if len(ms) == 1 else None)(machines_of(k8s, name)))
    assert remaining[0]["status"]["phase"] == "Running"
