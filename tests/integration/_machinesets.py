"""MachineSet helpers shared by the integration tests (the testbed's cloud simulator boots them)."""
from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client

from _labels import TEST_LABEL
from _poll import wait_for

GROUP, VERSION, NAMESPACE = "machine.openshift.io", "v1beta1", "openshift-machine-api"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def machineset_body(name: str, instance_type: str, replicas: int = 0,
                    labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A MachineSet shaped like the ones OpenShift's installer makes for GPU workers."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "MachineSet",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"machine.openshift.io/cluster-api-cluster": "testbed", TEST_LABEL: "true",
                                **(labels or {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"machine.openshift.io/cluster-api-machineset": name}},
            "template": {
                "metadata": {"labels": {"machine.openshift.io/cluster-api-machineset": name,
                                        "machine.openshift.io/cluster-api-cluster": "testbed"}},
                "spec": {
                    "metadata": {"labels": {"node-role.kubernetes.io/gpu": ""}},
                    "taints": [GPU_TAINT],
                    "providerSpec": {"value": {
                        "apiVersion": "machine.openshift.io/v1beta1", "kind": "AWSMachineProviderConfig",
                        "instanceType": instance_type,
                        "ami": {"id": "ami-0fbc8be8796dc1df5"},
                        "securityGroups": [{"filters": [{"name": "tag:Name", "values": ["testbed-node"]}]}],
                        "subnet": {"filters": [{"name": "tag:Name", "values": ["testbed-subnet-private-us-east-1a"]}]},
                        "placement": {"region": "us-east-1", "availabilityZone": "us-east-1a"}}},
                },
            },
        },
    }


def create_machineset(k8s: client.ApiClient, name: str, instance_type: str, replicas: int = 0,
                      labels: dict[str, str] | None = None) -> dict[str, Any]:
    return client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "machinesets", machineset_body(name, instance_type, replicas, labels))


def get_machineset(k8s: client.ApiClient, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(k8s).get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "machinesets", name)


def scale(k8s: client.ApiClient, name: str, replicas: int) -> None:
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object_scale(
        GROUP, VERSION, NAMESPACE, "machinesets", name, {"spec": {"replicas": replicas}})


def machines_of(k8s: client.ApiClient, name: str) -> list[dict[str, Any]]:
    return client.CustomObjectsApi(k8s).list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "machines",
        label_selector=f"machine.openshift.io/cluster-api-machineset={name}")["items"]


def nodes_of(k8s: client.ApiClient, name: str) -> list[Any]:
    """Nodes backing the MachineSet's Machines, found by the machine annotation."""
    prefix = f"{NAMESPACE}/{name}-"
    return [n for n in client.CoreV1Api(k8s).list_node().items
            if (n.metadata.annotations or {}).get("machine.openshift.io/machine", "").startswith(prefix)]


def delete_machineset(k8s: client.ApiClient, name: str) -> None:
    """Delete the MachineSet and its Machines, and wait until the Machines and Nodes are gone.

    The Machines are deleted here too rather than left to the garbage collector, which can take
    a minute to notice a custom resource's dependents after kube-apiserver restarts.
    """
    api = client.CustomObjectsApi(k8s)
    for plural, obj in [("machinesets", name)] + [("machines", m["metadata"]["name"]) for m in machines_of(k8s, name)]:
        try:
            api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, obj)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    wait_for(f"machines and nodes of {name} to go",
             lambda: not machines_of(k8s, name) and not nodes_of(k8s, name), timeout=60)


def delete_machinesets(k8s: client.ApiClient, names: list[str]) -> None:
    """`delete_machineset` for each; one failing does not keep the others."""
    errors = []
    for name in names:
        try:
            delete_machineset(k8s, name)
        except Exception as exc:  # noqa: BLE001 - reported below, after the others are deleted
            errors.append(f"{name}: {exc}")
    assert not errors, "MachineSets not cleaned up: " + "; ".join(errors)
