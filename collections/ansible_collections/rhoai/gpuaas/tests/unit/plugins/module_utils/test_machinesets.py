# -*- coding: utf-8 -*-
"""Readiness rules of machineset_scale over literal objects (no cluster)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import machinesets as ms_lib

NS = "openshift-machine-api"


def machineset(replicas: Optional[int] = 1, generation: int = 2, uid: str = "ms-uid",
               annotations: Optional[Dict[str, str]] = None, **status: Any) -> Dict[str, Any]:
    spec = {} if replicas is None else {"replicas": replicas}
    return {"metadata": {"name": "gpu", "namespace": NS, "uid": uid, "generation": generation,
                         "annotations": annotations or {}},
            "spec": spec, "status": dict(status)}


def machine(name: str, phase: Optional[str] = "Running", node: Optional[str] = None, owner: str = "ms-uid",
            deleting: bool = False, **status: Any) -> Dict[str, Any]:
    st: Dict[str, Any] = dict(status)
    if phase:
        st["phase"] = phase
    if node:
        st["nodeRef"] = {"kind": "Node", "name": node}
    meta: Dict[str, Any] = {"name": name, "namespace": NS,
                            "ownerReferences": [{"kind": "MachineSet", "uid": owner, "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": st}


def node(name: str, ready: bool = True, gpus: Optional[int] = 4, count_label: Optional[str] = "4",
         machine_ref: Optional[str] = None) -> Dict[str, Any]:
    labels = {} if count_label is None else {"nvidia.com/gpu.count": count_label}
    annotations = {} if machine_ref is None else {"machine.openshift.io/machine": machine_ref}
    allocatable = {"cpu": "47500m"} if gpus is None else {"cpu": "47500m", "nvidia.com/gpu": str(gpus)}
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations},
            "status": {"allocatable": allocatable,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


READY_STATUS = {"readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2}


def evaluate(ms: Dict[str, Any], machines: List[Dict[str, Any]], nodes: List[Dict[str, Any]], **kw: Any) -> Dict[str, Any]:
    return ms_lib.evaluate(ms, machines, nodes, **kw)


def test_ready_when_everything_matches() -> None:
    result = evaluate(machineset(**READY_STATUS), [machine("gpu-a", node="n1")], [node("n1")])
    assert result["ready"], result["waiting_for"]
    assert result["machines"] == [{"name": "gpu-a", "phase": "Running"}]
    assert result["nodes"] == [{"name": "n1", "ready": True, "gpus": 4}]
    assert result["failure"] is None


def test_absent_status_counters_are_zero() -> None:
    ms = machineset(replicas=0, observedGeneration=2)
    assert ms_lib.status_count(ms, "readyReplicas") == 0
    assert evaluate(ms, [], [])["ready"]
    # Scaling up with no counters yet: not ready, and the message says 0.
    up = evaluate(machineset(replicas=1, observedGeneration=2), [], [])
    assert not up["ready"]
    assert "status.readyReplicas 0 to become 1" in up["waiting_for"]


def test_unset_replicas_defaults_to_one() -> None:
    assert ms_lib.spec_replicas(machineset(replicas=None)) == 1


def test_stale_generation_is_not_ready() -> None:
    stale = machineset(readyReplicas=1, availableReplicas=1, observedGeneration=1)
    result = evaluate(stale, [machine("gpu-a", node="n1")], [node("n1")])
    assert not result["ready"]
    assert any("generation 2" in w for w in result["waiting_for"])
    missing = evaluate(machineset(readyReplicas=1, availableReplicas=1), [machine("gpu-a", node="n1")], [node("n1")])
    assert not missing["ready"]


def test_machine_not_running_or_node_not_ready() -> None:
    ms = machineset(**READY_STATUS)
    assert not evaluate(ms, [machine("gpu-a", phase="Provisioned", node="n1")], [node("n1")])["ready"]
    assert not evaluate(ms, [machine("gpu-a", node="n1")], [node("n1", ready=False)])["ready"]
    # Running but its Node is not visible (e.g. filtered out by node_selector).
    hidden = evaluate(ms, [machine("gpu-a", node="n1")], [])
    assert not hidden["ready"] and "not matching node_selector" in hidden["waiting_for"][0]


def test_node_found_by_annotation_without_node_ref() -> None:
    ms = machineset(**READY_STATUS)
    result = evaluate(ms, [machine("gpu-a")], [node("ip-10-0-1-2.ec2.internal", machine_ref=NS + "/gpu-a")])
    assert result["ready"]
    assert result["nodes"][0]["name"] == "ip-10-0-1-2.ec2.internal"


@pytest.mark.parametrize("gpus,label,minimum,ready", [
    (4, "4", None, True),
    (0, "4", None, False),       # device plugin not done yet
    (None, "4", None, False),    # resource not published at all
    (2, "4", 2, True),           # explicit minimum overrides the label
    (1, "4", 2, False),
    (0, None, None, True),       # CPU node: no count label, no annotation
])
def test_gpu_allocatable_threshold(gpus: Optional[int], label: Optional[str], minimum: Optional[int], ready: bool) -> None:
    result = evaluate(machineset(**READY_STATUS), [machine("gpu-a", node="n1")],
                      [node("n1", gpus=gpus, count_label=label)], min_gpus_per_node=minimum)
    assert result["ready"] is ready, result["waiting_for"]


def test_gpu_annotation_used_before_feature_discovery_labels() -> None:
    ms = machineset(annotations={"machine.openshift.io/GPU": "4"}, **READY_STATUS)
    result = evaluate(ms, [machine("gpu-a", node="n1")], [node("n1", gpus=0, count_label=None)])
    assert not result["ready"]
    assert "to publish 4 nvidia.com/gpu" in result["waiting_for"][-1]


def test_custom_gpu_resource() -> None:
    n = node("n1", gpus=None, count_label=None)
    n["status"]["allocatable"]["amd.com/gpu"] = "8"
    result = evaluate(machineset(**READY_STATUS), [machine("gpu-a", node="n1")], [n],
                      gpu_resource="amd.com/gpu", min_gpus_per_node=8)
    assert result["ready"] and result["nodes"][0]["gpus"] == 8


def test_failed_machine_is_terminal() -> None:
    failed = machine("gpu-a", phase="Failed", errorReason="CreateError",
                     errorMessage="InsufficientInstanceCapacity: We currently do not have sufficient g6.12xlarge capacity.")
    result = evaluate(machineset(observedGeneration=2), [failed], [])
    assert not result["ready"]
    assert "Machine gpu-a of MachineSet gpu failed: CreateError: InsufficientInstanceCapacity" in result["failure"]
    assert "capacity. A failed Machine" in result["failure"]


def test_failed_machine_on_scale_down_is_not_terminal() -> None:
    ms = machineset(replicas=1, observedGeneration=2)
    machines = [machine("gpu-a", phase="Failed", errorReason="CreateError"), machine("gpu-b", node="n1")]
    assert evaluate(ms, machines, [node("n1")])["failure"] is None


def test_machineset_error_reason_is_terminal() -> None:
    ms = machineset(errorReason="InvalidConfiguration", errorMessage="bad providerSpec")
    assert evaluate(ms, [], [])["failure"] == "MachineSet gpu reports InvalidConfiguration: bad providerSpec"


def test_scale_to_zero_waits_for_machines_and_nodes() -> None:
    ms = machineset(replicas=0, observedGeneration=2)
    deleting = machine("gpu-a", node="n1", deleting=True)
    result = evaluate(ms, [deleting], [node("n1")], previous_nodes=frozenset({"n1"}))
    assert not result["ready"]
    assert result["machines"] == [{"name": "gpu-a", "phase": "Deleting"}]
    # Machine gone, Node still there.
    result = evaluate(ms, [], [node("n1")], previous_nodes=frozenset({"n1"}))
    assert result["waiting_for"] == ["Node n1 to be deleted"]
    assert evaluate(ms, [], [], previous_nodes=frozenset({"n1"}))["ready"]


def test_machines_of_other_machinesets_are_ignored() -> None:
    other = machine("other-a", phase="Failed", errorReason="CreateError", owner="other-uid")
    result = evaluate(machineset(replicas=0, observedGeneration=2), [other], [])
    assert result["ready"] and result["failure"] is None and result["machines"] == []


def test_nodes_of_and_selectors() -> None:
    ms = machineset()
    machines = [machine("gpu-a", node="n1"), machine("gpu-b", phase="Provisioned"),
                machine("x", node="n3", owner="other")]
    nodes = [node("n1"), node("n2", machine_ref=NS + "/gpu-b"), node("n3")]
    assert ms_lib.nodes_of(ms, machines, nodes) == frozenset({"n1", "n2"})
    assert ms_lib.join_selectors(["a=b", " ", "c in (d)"]) == "a=b,c in (d)"
    assert ms_lib.join_selectors([]) is None and ms_lib.join_selectors(None) is None


class FakeClient:
    def __init__(self, items: List[Dict[str, Any]]) -> None:
        self.items = items
        self.scaled: List[Any] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> Optional[Dict[str, Any]]:
        return next((o for o in self.items if o["metadata"]["name"] == name), None)

    def list(self, api_version: str, kind: str, namespace: str, label_selector: Optional[str] = None) -> Any:
        return list(self.items), "1"

    def patch_scale(self, api_version: str, kind: str, name: str, namespace: str, replicas: int,
                    dry_run: bool = False) -> Dict[str, Any]:
        assert (api_version, kind) == (ms_lib.API_VERSION, "MachineSet")
        assert dry_run is False, "scale() must not dry-run unless asked"
        self.scaled.append((name, namespace, replicas))
        return {"spec": {"replicas": replicas}}


def test_select_and_scale() -> None:
    b, a = machineset(), machineset()
    b["metadata"]["name"], a["metadata"]["name"] = "b", "a"
    client = FakeClient([b, a])
    assert [m["metadata"]["name"] for m in ms_lib.select(client, NS, label_selectors=["x=y"])] == ["a", "b"]
    with pytest.raises(ms_lib.MachineSetError, match="MachineSet 'nope' not found in namespace 'openshift-machine-api'"):
        ms_lib.select(client, NS, name="nope")
    with pytest.raises(ms_lib.MachineSetError, match="No MachineSet"):
        ms_lib.select(FakeClient([]), NS, label_selectors=["x=y"])
    ms_lib.scale(client, a, 3)
    assert client.scaled == [("a", NS, 3)]
