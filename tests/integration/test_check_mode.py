"""Check mode on every write path, against the live testbed: nothing changes, and `changed` tells the truth.

For each strategy of isvc_replicas (and a start from stopped) and for machineset_scale by name
and by label selector: a `--check` run leaves the objects exactly as they were (same
resourceVersion, or, where a controller wrote its status meanwhile, the same metadata, spec and
non-status field owners), creates and deletes nothing, and says `changed: true`; the real run
then says `changed: true` with the same diff and does change the cluster; a `--check` run after
it says `changed: false`.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

import _kueue_objects as ko
from _poll import wait_for
from _machinesets import (NAMESPACE, create_machineset, delete_machinesets, get_machineset, machines_of, nodes_of,
                          unique_name)

pytestmark = pytest.mark.integration

DEPLOYMENT = "apps/v1"


@pytest.fixture
def cq(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str], kueue_flavors: list[str]) -> Iterator[str]:
    with ko.queues(k8s, namespace) as name:
        yield name


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What a write by the module would change: everything but the status and the version stamps."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
    owners = [f for f in obj["metadata"].get("managedFields") or [] if f.get("subresource") != "status"]
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta, "owners": owners}


def assert_unchanged(before: dict[str, Any] | None, after: dict[str, Any] | None, what: str) -> None:
    """Same object: same resourceVersion, or only a controller's status write in between."""
    if before is None:
        assert after is None, f"{what} was created"
        return
    assert after is not None, f"{what} was deleted"
    assert after["metadata"]["uid"] == before["metadata"]["uid"], f"{what} was replaced"
    if after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]:
        assert _comparable(after) == _comparable(before), f"{what} was written (not only its status)"


class IsvcState:
    """The ISVC, its predictor Deployment, pods and Workloads as they are now."""

    def __init__(self, k8s: client.ApiClient, name: str, namespace: str) -> None:
        self.isvc = ko.get(k8s, ko.ISVC, "InferenceService", name, namespace)
        self.deployment = ko.get(k8s, DEPLOYMENT, "Deployment", name + "-predictor", namespace)
        self.pods = sorted((p.metadata.uid, p.metadata.deletion_timestamp is None)
                           for p in ko.predictor_pods(k8s, name, namespace))
        workloads = ko.dynamic(k8s).resources.get(api_version=ko.KUEUE, kind="Workload").get(namespace=namespace)
        self.workloads = sorted(w["metadata"]["uid"] for w in workloads.to_dict()["items"])

    def assert_same_as(self, before: "IsvcState") -> None:
        assert_unchanged(before.isvc, self.isvc, "the InferenceService")
        assert_unchanged(before.deployment, self.deployment, "the predictor Deployment")
        assert self.pods == before.pods, "predictor pods were created or deleted"
        assert self.workloads == before.workloads, "Workloads were created or deleted"


def reconciled(isvc: dict[str, Any], stopped: bool) -> bool:
    conditions = {c["type"]: c["status"] for c in (isvc.get("status") or {}).get("conditions") or []}
    return bool(isvc["metadata"].get("finalizers")) and (conditions.get("Stopped") == "True" or not stopped)


def written(before: IsvcState, after: IsvcState) -> bool:
    """The real run changed the ISVC's spec or annotations, or the Deployment's replicas."""
    def spec(state: IsvcState) -> Any:
        isvc = state.isvc or {}
        return (isvc.get("spec"), (isvc.get("metadata") or {}).get("annotations"),
                ((state.deployment or {}).get("spec") or {}).get("replicas"))
    return spec(before) != spec(after)


CASES = [
    # strategy, created stopped?, what is asked
    pytest.param("auto", False, {"state": "stopped"}, id="auto-stop"),
    pytest.param("stop_annotation", False, {"replicas": 0}, id="stop_annotation-stop"),
    pytest.param("autoscaler_none", False, {"replicas": 0}, id="autoscaler_none-stop"),
    pytest.param("deployment_scale", False, {"replicas": 0}, id="deployment_scale-stop"),
    pytest.param("min_replicas", False, {"replicas": 0}, id="min_replicas-stop"),
    pytest.param("auto", True, {"state": "started"}, id="auto-start-from-stopped"),
    pytest.param("deployment_scale", True, {"replicas": 1}, id="deployment_scale-start-from-stopped"),
    pytest.param("autoscaler_none", True, {"replicas": 1}, id="autoscaler_none-start-from-stopped"),
]


@pytest.mark.parametrize("strategy,stopped,wish", CASES)
def test_isvc_replicas_check_mode_changes_nothing(k8s: client.ApiClient, run_module: Callable[..., dict],
                                                  namespace: str, cq: str, strategy: str, stopped: bool,
                                                  wish: dict[str, Any]) -> None:
    ko.create(k8s, ko.inference_service("llm", namespace, 1, stopped=stopped))
    if not stopped:
        run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "state": "started", "wait_timeout": 120})
        assert len(ko.predictor_pods(k8s, "llm", namespace)) == 1
    # KServe has reconciled it (finalizer added, Stopped condition written): from here on only the
    # module under test could write its metadata or spec
    wait_for("KServe to reconcile the InferenceService", lambda: reconciled(ko.isvc(k8s, "llm", namespace), stopped))
    args = {"name": "llm", "namespace": namespace, "strategy": strategy, **wish}

    before = IsvcState(k8s, "llm", namespace)
    checked = run_module("isvc_replicas", args, check=True, diff=True)
    IsvcState(k8s, "llm", namespace).assert_same_as(before)
    assert checked["changed"] is True

    # min_replicas under the hpa class never frees the pod (the warning says so): its wait times out
    frees_nothing = strategy == "min_replicas"
    real = run_module("isvc_replicas", {**args, "wait_timeout": 15 if frees_nothing else 120}, diff=True,
                      expect_fail=frees_nothing)
    assert real["changed"] is True
    assert real["diff"] == checked["diff"]
    assert written(before, IsvcState(k8s, "llm", namespace)), "`changed: true`, but nothing was written"

    after = IsvcState(k8s, "llm", namespace)
    again = run_module("isvc_replicas", args, check=True)
    assert again["changed"] is False
    IsvcState(k8s, "llm", namespace).assert_same_as(after)


@pytest.fixture
def machinesets(k8s: client.ApiClient) -> Iterator[Callable[..., str]]:
    created: list[str] = []

    def make(instance_type: str, labels: dict[str, str]) -> str:
        name = unique_name("chk-" + instance_type.replace(".", "-"))
        create_machineset(k8s, name, instance_type, 0, labels)
        created.append(name)
        return name
    try:
        yield make
    finally:
        delete_machinesets(k8s, created)


def live_machinesets(k8s: client.ApiClient, names: list[str]) -> dict[str, Any]:
    return {n: (get_machineset(k8s, n), sorted(m["metadata"]["uid"] for m in machines_of(k8s, n)),
                sorted(node.metadata.name for node in nodes_of(k8s, n))) for n in names}


def assert_machinesets_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    for name, (ms, machines, nodes) in before.items():
        assert_unchanged(ms, after[name][0], f"MachineSet {name}")
        assert after[name][1:] == (machines, nodes), f"Machines or Nodes of {name} were created or deleted"


def test_machineset_scale_check_mode_by_name_and_selector(k8s: client.ApiClient, run_module: Callable[..., dict],
                                                          machinesets: Callable[..., str]) -> None:
    group = {"gpuaas-test/group": uuid.uuid4().hex[:8]}
    selector = [f"gpuaas-test/group={group['gpuaas-test/group']}"]
    small, big = machinesets("g6.4xlarge", group), machinesets("g6.12xlarge", group)
    bystander = machinesets("g6.4xlarge", {"gpuaas-test/group": "other"})
    everything = [small, big, bystander]

    before = live_machinesets(k8s, everything)
    by_selector = run_module("machineset_scale", {"label_selectors": selector, "replicas": 1}, check=True, diff=True)
    by_name = run_module("machineset_scale", {"name": small, "namespace": NAMESPACE, "replicas": 1}, check=True)
    assert_machinesets_unchanged(before, live_machinesets(k8s, everything))
    assert by_selector["changed"] is True and by_name["changed"] is True
    assert sorted(e["name"] for e in by_selector["machinesets"]) == sorted([small, big])
    assert [(e["replicas_before"], e["machines"]) for e in by_selector["machinesets"]] == [(0, []), (0, [])]

    # the real run by name does what check mode announced, and only to that MachineSet
    real = run_module("machineset_scale", {"name": small, "replicas": 1, "wait_timeout": 120}, diff=True)
    assert real["changed"] is True
    assert get_machineset(k8s, small)["spec"]["replicas"] == 1 and len(machines_of(k8s, small)) == 1
    assert get_machineset(k8s, big)["spec"]["replicas"] == 0

    # now only `big` would change: the selector run still says changed, the name run does not
    before = live_machinesets(k8s, everything)
    by_selector = run_module("machineset_scale", {"label_selectors": selector, "replicas": 1}, check=True, diff=True)
    by_name = run_module("machineset_scale", {"name": small, "replicas": 1}, check=True)
    assert_machinesets_unchanged(before, live_machinesets(k8s, everything))
    assert by_selector["changed"] is True and by_name["changed"] is False
    assert by_selector["diff"]["before"]["machinesets"] == {small: {"replicas": 1}, big: {"replicas": 0}}

    # and down again, by selector, as check mode first
    before = live_machinesets(k8s, everything)
    down = run_module("machineset_scale", {"label_selectors": selector, "replicas": 0}, check=True)
    assert down["changed"] is True
    assert_machinesets_unchanged(before, live_machinesets(k8s, everything))
    assert len(machines_of(k8s, small)) == 1
