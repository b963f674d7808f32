"""rhoai.gpuaas.machineset_scale against the testbed (MachineSets booted by the cloud simulator).

Bad input (a missing MachineSet, negative replicas, ...) is in test_bad_inputs.py."""
from __future__ import annotations

import uuid
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

from _poll import wait_for
from _machinesets import create_machineset, delete_machinesets, get_machineset, machines_of, nodes_of, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def machineset(k8s: client.ApiClient) -> Iterator[Callable[..., str]]:
    """Factory of MachineSets (replicas 0), deleted with their Machines and Nodes afterwards."""
    created: list[str] = []

    def make(instance_type: str = "g6.12xlarge", labels: dict[str, str] | None = None) -> str:
        name = unique_name("msc-" + instance_type.replace(".", "-"))
        create_machineset(k8s, name, instance_type, 0, labels)
        created.append(name)
        return name
    try:
        yield make
    finally:
        delete_machinesets(k8s, created)


def test_scale_up_idempotent_check_mode_and_down(k8s: client.ApiClient, run_module: Callable[..., dict],
                                                 machineset: Callable[..., str]) -> None:
    name = machineset("g6.12xlarge")

    up = run_module("machineset_scale", {"name": name, "replicas": 1, "wait_timeout": 120}, diff=True)
    assert up["changed"] is True
    assert get_machineset(k8s, name)["spec"]["replicas"] == 1
    (entry,) = up["machinesets"]
    assert (entry["name"], entry["replicas_before"]) == (name, 0)
    # what the module reports is what the cluster has: the Machine and the Node of the MachineSet
    (live_machine,) = machines_of(k8s, name)
    (live_node,) = nodes_of(k8s, name)
    assert entry["machines"] == [{"name": live_machine["metadata"]["name"], "phase": "Running"}]
    assert entry["nodes"] == [{"name": live_node.metadata.name, "ready": True, "gpus": 4}]
    assert entry["waiting_for"] == []
    assert up["diff"]["before"]["machinesets"][name] == {"replicas": 0}
    assert up["diff"]["after"]["machinesets"][name] == {"replicas": 1}
    node_name = entry["nodes"][0]["name"]
    assert node_name.endswith(".ec2.internal") and not node_name.startswith(name)  # found via nodeRef/annotation

    again = run_module("machineset_scale", {"name": name, "replicas": 1})
    assert again["changed"] is False
    assert again["machinesets"][0]["nodes"][0]["name"] == node_name

    version = get_machineset(k8s, name)["metadata"]["resourceVersion"]
    checked = run_module("machineset_scale", {"name": name, "replicas": 0}, check=True)
    assert checked["changed"] is True
    assert checked["machinesets"][0]["replicas_before"] == 1
    assert get_machineset(k8s, name)["metadata"]["resourceVersion"] == version
    assert [m["metadata"]["name"] for m in machines_of(k8s, name)] == [live_machine["metadata"]["name"]]

    down = run_module("machineset_scale", {"name": name, "replicas": 0, "wait_timeout": 120})
    assert down["changed"] is True
    assert down["machinesets"][0]["machines"] == [] and down["machinesets"][0]["nodes"] == []
    # The wait really covered the deletion: nothing is left the moment the module returns.
    assert machines_of(k8s, name) == [] and nodes_of(k8s, name) == []
    assert "readyReplicas" not in get_machineset(k8s, name).get("status", {})


def test_unavailable_instance_type_fails_fast(run_module: Callable[..., dict], machineset: Callable[..., str],
                                              cloud_config: Callable[..., Any]) -> None:
    name = machineset("g6.12xlarge")
    with cloud_config(unavailable_instance_types=["g6.12xlarge"]):
        failed = run_module("machineset_scale", {"name": name, "replicas": 1, "wait_timeout": 300}, expect_fail=True)
    assert "CreateError" in failed["msg"] and "InsufficientInstanceCapacity" in failed["msg"]
    assert "Timed out" not in failed["msg"], "a failed Machine must end the wait, not the timeout"
    assert failed["changed"] is True
    assert [m["phase"] for m in failed["machinesets"][0]["machines"]] == ["Failed"]
    # The failed Machine is not replaced; scaling to 0 removes it.
    run_module("machineset_scale", {"name": name, "replicas": 0, "wait_timeout": 120})


def test_label_selector_scales_two_machinesets(k8s: client.ApiClient, run_module: Callable[..., dict],
                                               machineset: Callable[..., str]) -> None:
    group = {"gpuaas-test/group": uuid.uuid4().hex[:8]}
    names = sorted([machineset("g6.4xlarge", group), machineset("g6.12xlarge", group)])
    selector = [f"gpuaas-test/group={group['gpuaas-test/group']}"]

    up = run_module("machineset_scale", {"label_selectors": selector, "replicas": 1, "wait_timeout": 120,
                                         "node_selector": ["nvidia.com/gpu.present=true"]})
    assert [e["name"] for e in up["machinesets"]] == names
    assert sorted(e["nodes"][0]["gpus"] for e in up["machinesets"]) == [1, 4]

    down = run_module("machineset_scale", {"label_selectors": selector, "replicas": 0, "wait_timeout": 120})
    assert all(e["machines"] == [] for e in down["machinesets"])
    assert all(nodes_of(k8s, n) == [] for n in names)


def test_wait_survives_apiserver_restart(k8s: client.ApiClient, machineset: Callable[..., str],
                                         cloud_config: Callable[..., Any], restart_apiserver: Callable[..., Any],
                                         start_module: Callable[..., Any]) -> None:
    """The node boots after kube-apiserver was down: the watch reconnects and the wait still ends Ready."""
    name = machineset("g6.4xlarge")
    with cloud_config(boot_delay_seconds=15):
        scaling = start_module("machineset_scale", {"name": name, "replicas": 1, "wait_timeout": 180})
        wait_for("the module to scale the MachineSet and wait",
                 lambda: scaling.watching() and get_machineset(k8s, name)["spec"]["replicas"] == 1, timeout=60)
        assert nodes_of(k8s, name) == []  # not booted yet: the module must see it arrive after the outage
        outage = restart_apiserver(down_for=4.0, during=scaling.running)
        outage.join(timeout=120)
        up = scaling.wait()
    assert outage.seen_during is True, "machineset_scale was not waiting any more when the API went down"
    (entry,) = up["machinesets"]
    assert [(n["ready"], n["gpus"]) for n in entry["nodes"]] == [(True, 1)]
    assert [n.metadata.name for n in nodes_of(k8s, name)] == [entry["nodes"][0]["name"]]
