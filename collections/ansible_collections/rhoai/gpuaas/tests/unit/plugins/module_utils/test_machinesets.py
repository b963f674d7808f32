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


def test_ready_but_not_available_is_not_ready() -> None:
    """machine-api counts a Machine available only after its Node has been Ready for minReadySeconds."""
    ms = machineset(readyReplicas=1, availableReplicas=0, observedGeneration=2)
    result = evaluate(ms, [machine("gpu-a", node="n1")], [node("n1")])
    assert not result["ready"]
    assert result["waiting_for"] == ["status.availableReplicas 0 to become 1"]
    ms = machineset(readyReplicas=0, availableReplicas=1, observedGeneration=2)
    assert evaluate(ms, [machine("gpu-a", node="n1")], [node("n1")])["waiting_for"] == [
        "status.readyReplicas 0 to become 1"]


def test_a_failed_machine_is_terminal_when_the_other_is_being_deleted() -> None:
    """A Machine being deleted will not serve: only the failed one is left for spec.replicas 1."""
    ms = machineset(replicas=1, observedGeneration=2)
    failed = machine("gpu-a", phase="Failed", errorReason="CreateError", errorMessage="no capacity")
    leaving = machine("gpu-b", node="n1", deleting=True)
    result = evaluate(ms, [failed, leaving], [node("n1")])
    assert result["failure"] == ("Machine gpu-a of MachineSet gpu failed: CreateError: no capacity. A failed Machine "
                                 "is not replaced: delete it or scale the MachineSet down to retry")
    # the same failed Machine, itself being deleted, no longer counts
    failed["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    healthy = machine("gpu-c", node="n2")
    assert evaluate(ms, [failed, healthy], [node("n2")])["failure"] is None


def test_only_the_controller_owner_counts() -> None:
    """Another controller may list the MachineSet as a plain owner; the Machine is not the MachineSet's."""
    ms = machineset(replicas=0, observedGeneration=2)
    adopted = machine("other-a", node="n1")
    adopted["metadata"]["ownerReferences"] = [
        {"kind": "MachineSet", "uid": "ms-uid", "controller": False},
        {"kind": "MachineSet", "uid": "other-uid", "controller": True}]
    no_flag = machine("other-b", node="n2")
    del no_flag["metadata"]["ownerReferences"][0]["controller"]
    result = evaluate(ms, [adopted, no_flag], [node("n1"), node("n2")])
    assert result["ready"] and result["machines"] == []
    assert ms_lib.owned_machines(ms, [adopted, no_flag]) == []
    assert ms_lib.nodes_of(ms, [adopted, no_flag], [node("n1"), node("n2")]) == frozenset()


def test_nodes_of_and_selectors() -> None:
    ms = machineset()
    machines = [machine("gpu-a", node="n1"), machine("gpu-b", phase="Provisioned"),
                machine("x", node="n3", owner="other")]
    nodes = [node("n1"), node("n2", machine_ref=NS + "/gpu-b"), node("n3")]
    assert ms_lib.nodes_of(ms, machines, nodes) == frozenset({"n1", "n2"})
    assert ms_lib.join_selectors(["a=b", " ", "c in (d)"]) == "a=b,c in (d)"
    assert ms_lib.join_selectors([]) is None and ms_lib.join_selectors(None) is None


def matches(labels: Dict[str, str], selector: Optional[str]) -> bool:
    """Equality-based label selector as the API server reads it (``a=b,c!=d,e,!f``)."""
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.strip().rstrip("=")) != value.strip().lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif " " in term or "(" in term:
            raise AssertionError("the fake does not parse set-based selectors: {0!r}".format(term))
        elif term not in labels:
            return False
    return True


class FakeClient:
    """MachineSets of one namespace; checks what it is asked for like the API server would."""

    def __init__(self, items: List[Dict[str, Any]], namespace: str = NS) -> None:
        self.items = items
        self.namespace = namespace
        self.scaled: List[Any] = []

    def _check(self, api_version: str, kind: str, namespace: Optional[str]) -> bool:
        assert (api_version, kind) == ("machine.openshift.io/v1beta1", "MachineSet"), (api_version, kind)
        return namespace == self.namespace

    def get(self, api_version: str, kind: str, name: str, namespace: Optional[str] = None) -> Optional[Dict[str, Any]]:
        if not self._check(api_version, kind, namespace):
            return None
        return next((o for o in self.items if o["metadata"]["name"] == name), None)

    def list(self, api_version: str, kind: str, namespace: Optional[str] = None,
             label_selector: Optional[str] = None, field_selector: Optional[str] = None) -> Any:
        assert field_selector is None
        if not self._check(api_version, kind, namespace):
            return [], "7"
        return [o for o in self.items if matches(o["metadata"].get("labels") or {}, label_selector)], "7"

    def patch_scale(self, api_version: str, kind: str, name: str, namespace: Optional[str], replicas: int,
                    **options: Any) -> Dict[str, Any]:
        assert self._check(api_version, kind, namespace) and self.get(api_version, kind, name, namespace)
        assert isinstance(replicas, int) and replicas >= 0
        assert options.get("dry_run", False) is False, "scale() must not dry-run unless asked"
        self.scaled.append((name, namespace, replicas))
        return {"kind": "Scale", "metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": replicas}}


def named(name: str, **labels: str) -> Dict[str, Any]:
    ms = machineset()
    ms["metadata"].update(name=name, uid="uid-" + name, labels=dict(labels))
    return ms


def test_select_by_name() -> None:
    client = FakeClient([named("b"), named("a")])
    assert [m["metadata"]["uid"] for m in ms_lib.select(client, NS, name="a")] == ["uid-a"]
    with pytest.raises(ms_lib.MachineSetError) as err:
        ms_lib.select(client, NS, name="nope")
    assert str(err.value) == "MachineSet 'nope' not found in namespace 'openshift-machine-api'"
    with pytest.raises(ms_lib.MachineSetError) as err:
        ms_lib.select(client, "other", name="a")
    assert str(err.value) == "MachineSet 'a' not found in namespace 'other'"


def test_select_by_label_selectors_sends_them_all() -> None:
    client = FakeClient([named("gpu-b", role="gpu", zone="a"), named("gpu-a", role="gpu", zone="a"),
                         named("gpu-c", role="gpu", zone="c"), named("cpu", role="cpu", zone="a")])
    assert [m["metadata"]["name"] for m in ms_lib.select(client, NS, label_selectors=["role=gpu"])] == [
        "gpu-a", "gpu-b", "gpu-c"]
    # several selectors mean all of them
    assert [m["metadata"]["name"] for m in ms_lib.select(client, NS, label_selectors=["role=gpu", "zone=a"])] == [
        "gpu-a", "gpu-b"]
    with pytest.raises(ms_lib.MachineSetError) as err:
        ms_lib.select(client, NS, label_selectors=["role=gpu", "zone=b"])
    assert str(err.value) == "No MachineSet in namespace 'openshift-machine-api' matches label selector 'role=gpu,zone=b'"
    with pytest.raises(ms_lib.MachineSetError, match="No MachineSet in namespace 'other'"):
        ms_lib.select(client, "other", label_selectors=["role=gpu"])


def test_scale_uses_the_scale_subresource_of_that_machineset() -> None:
    a = named("a")
    a["metadata"]["namespace"] = NS
    client = FakeClient([a, named("b")])
    answer = ms_lib.scale(client, a, 3)
    assert client.scaled == [("a", NS, 3)]
    assert answer["kind"] == "Scale"


def test_evaluate_reports_everything_it_waits_for() -> None:
    ms = machineset(replicas=2, generation=3, readyReplicas=1, availableReplicas=0, observedGeneration=2)
    machines = [
        machine("gpu-a", node="n1"),                      # its Node has not published all GPUs yet
        machine("gpu-b", phase=None),                     # no phase yet: Pending, no Node to look at
        machine("gpu-c", node="n9"),                      # Running, but its Node is not visible
        machine("gpu-d", node="n2", deleting=True),       # being deleted, Node NotReady
    ]
    nodes = [node("n1", gpus=2), node("n2", ready=False)]
    assert evaluate(ms, machines, nodes) == {
        "name": "gpu", "namespace": NS, "replicas": 2, "ready": False,
        "waiting_for": [
            "the controller to observe generation 3",
            "status.readyReplicas 1 to become 2",
            "status.availableReplicas 0 to become 2",
            "4 Machines to become 2",
            "Node n1 to publish 4 nvidia.com/gpu (allocatable 2)",
            "Machine gpu-b to be Running (phase Pending)",
            "the Node of Machine gpu-c (not found or not matching node_selector)",
            "Machine gpu-d to be Running (phase Deleting)",
            "Node n2 to be Ready",
        ],
        "failure": None,
        "machines": [{"name": "gpu-a", "phase": "Running"}, {"name": "gpu-b", "phase": None},
                     {"name": "gpu-c", "phase": "Running"}, {"name": "gpu-d", "phase": "Deleting"}],
        "nodes": [{"name": "n1", "ready": True, "gpus": 2}, {"name": "n2", "ready": False, "gpus": 4}],
    }


def test_scale_to_zero_reports_the_nodes_still_there() -> None:
    ms = machineset(replicas=0, observedGeneration=2)
    result = evaluate(ms, [], [node("n1", ready=False, gpus=1), node("other")], gpu_resource="nvidia.com/gpu",
                      previous_nodes=frozenset({"n1", "gone"}))
    assert result["nodes"] == [{"name": "n1", "ready": False, "gpus": 1}]
    assert result["waiting_for"] == ["Node n1 to be deleted"]


def test_machine_failure_wording() -> None:
    assert ms_lib.machine_failure(machine("a", phase="Failed")) == "Failed: no message"
    assert ms_lib.machine_failure(machine("a", phase="Provisioning", errorReason="CreateError")) == (
        "CreateError: no message")
    assert ms_lib.machine_failure(machine("a", phase="Running")) is None
    failed = machine("gpu-a", phase="Failed", errorMessage="quota exceeded.")
    assert evaluate(machineset(observedGeneration=2), [failed], [])["failure"] == (
        "Machine gpu-a of MachineSet gpu failed: Failed: quota exceeded. A failed Machine is not replaced: "
        "delete it or scale the MachineSet down to retry")
    assert evaluate(machineset(errorReason="InvalidConfiguration"), [], [])["failure"] == (
        "MachineSet gpu reports InvalidConfiguration: no message")


def test_generation_without_metadata_generation_is_current() -> None:
    ms = machineset()
    del ms["metadata"]["generation"]
    assert ms_lib.generation_current(ms)
    assert ms_lib.generation_current(machineset(generation=2, observedGeneration=3))
    assert not ms_lib.generation_current(machineset(generation=2, observedGeneration=1))
