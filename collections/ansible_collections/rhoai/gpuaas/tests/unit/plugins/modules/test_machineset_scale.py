# -*- coding: utf-8 -*-
"""machineset_scale as Ansible runs it."""

from __future__ import annotations

from typing import Any, Dict, Optional

import pytest

from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster

API = "machine.openshift.io/v1beta1"
NS = "openshift-machine-api"


def cluster(replicas: int = 0) -> FakeCluster:
    c = FakeCluster()
    c.add({"apiVersion": API, "kind": "MachineSet", "metadata": {"name": "gpu-a", "namespace": NS, "generation": 1,
                                                                 "labels": {"role": "gpu"}},
           "spec": {"replicas": replicas}, "status": {"observedGeneration": 1}})
    return c


def test_name_or_selectors(run_module) -> None:
    result, failed = run_module("machineset_scale", {"replicas": 1})
    assert failed and "one of the following is required: name, label_selectors" in result["msg"]


def test_negative_replicas_fail_before_connecting(run_module) -> None:
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": -1}, cluster=FakeCluster())
    assert failed and result["msg"] == "replicas must be 0 or more, got -1"


def test_negative_min_gpus_per_node_fails_before_any_write(run_module) -> None:
    c = cluster()
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "min_gpus_per_node": -1},
                                cluster=c)
    assert failed and result["msg"] == "min_gpus_per_node must be 0 or more, got -1" and c.writes == []


def test_check_mode_dry_runs_the_scale_and_reports_the_servers_answer(run_module) -> None:
    c = cluster()
    result, failed = run_module("machineset_scale", {"label_selectors": ["role=gpu"], "replicas": 1, "timeout": 10},
                                cluster=c, check=True, diff=True)
    assert not failed and result["changed"] is True
    assert [(w["verb"], w["dry_run"], w["replicas"]) for w in c.writes] == [("scale", True, 1)]
    assert result["machinesets"][0]["replicas_before"] == 0 and result["machinesets"][0]["replicas_after"] == 1
    assert result["diff"]["after"] == {"machinesets": {"gpu-a": {"replicas": 1}}}
    assert c.find(API, "MachineSet", "gpu-a", NS)["spec"]["replicas"] == 0


def test_unchanged_is_not_changed(run_module) -> None:
    c = cluster(replicas=0)
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 0, "wait": False}, cluster=c)
    assert not failed and result["changed"] is False and c.writes == []


def test_missing_machineset_is_named(run_module) -> None:
    result, failed = run_module("machineset_scale", {"name": "nope", "replicas": 1}, cluster=cluster())
    assert failed and result["msg"] == "MachineSet 'nope' not found in namespace 'openshift-machine-api'"


# ---------------------------------------------------------------- a run with the Machine API controller


def gpu_machineset(name: str, replicas: int = 0, **labels: str) -> Dict[str, Any]:
    return {"apiVersion": API, "kind": "MachineSet",
            "metadata": {"name": name, "namespace": NS, "generation": 1, "labels": dict(labels, role="gpu"),
                         "annotations": {"machine.openshift.io/GPU": "4"}},
            "spec": {"replicas": replicas}, "status": {"observedGeneration": 1}}


class MachineController:
    """The Machine API and the GPU operator, at once: a scale makes (or deletes) Machines with Ready GPU Nodes.

    ``gpus``: what each Node publishes as allocatable; ``failed``: the new Machines fail instead;
    ``node_labels``: the labels of the new Nodes; ``deleted``: the MachineSet is deleted on scale.
    """

    def __init__(self, cluster: FakeCluster, gpus: int = 4, failed: bool = False,
                 node_labels: Optional[Dict[str, str]] = None, deleted: bool = False) -> None:
        self.cluster, self.gpus, self.failed, self.deleted = cluster, gpus, failed, deleted
        self.node_labels = node_labels if node_labels is not None else {"node-role.kubernetes.io/gpu": ""}
        cluster.on_write.append(self.reconcile)

    def reconcile(self, cluster: FakeCluster, verb: str, ms: Dict[str, Any]) -> None:
        if verb != "scale" or ms["kind"] != "MachineSet":
            return
        name, uid, want = ms["metadata"]["name"], ms["metadata"]["uid"], ms["spec"]["replicas"]
        if self.deleted:
            cluster.remove(API, "MachineSet", name, NS)
            return
        for index in range(want):
            machine = "{0}-{1}".format(name, index)
            status: Dict[str, Any] = {"phase": "Running", "nodeRef": {"name": machine + "-node"}}
            if self.failed:
                status = {"phase": "Failed", "errorReason": "InsufficientCapacity",
                          "errorMessage": "no g5.12xlarge capacity in us-east-1a."}
            cluster.add({"apiVersion": API, "kind": "Machine",
                         "metadata": {"name": machine, "namespace": NS,
                                      "ownerReferences": [{"kind": "MachineSet", "name": name, "uid": uid,
                                                           "controller": True}]},
                         "status": status})
            if not self.failed:
                cluster.add({"apiVersion": "v1", "kind": "Node",
                             "metadata": {"name": machine + "-node", "labels": dict(self.node_labels)},
                             "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                        "allocatable": {"nvidia.com/gpu": str(self.gpus)}}})
        for machine in cluster.list(API, "Machine", NS)[0]:
            index = int(machine["metadata"]["name"].rsplit("-", 1)[1])
            if machine["metadata"]["ownerReferences"][0]["uid"] == uid and index >= want:
                cluster.remove(API, "Machine", machine["metadata"]["name"], NS)
                cluster.remove("v1", "Node", machine["metadata"]["name"] + "-node")
        ready = 0 if self.failed else want
        status = {"observedGeneration": ms["metadata"]["generation"]}
        if ready:  # omitempty: no counters at 0
            status.update(replicas=want, readyReplicas=ready, availableReplicas=ready)
        cluster.update(dict(ms, status=status))


def ready_entry(name: str, before: int, after: int, nodes: int) -> Dict[str, Any]:
    return {"name": name, "namespace": NS, "replicas": after, "ready": True, "waiting_for": [], "failure": None,
            "machines": [{"name": "{0}-{1}".format(name, i), "phase": "Running"} for i in range(nodes)],
            "nodes": [{"name": "{0}-{1}-node".format(name, i), "ready": True, "gpus": 4} for i in range(nodes)],
            "replicas_before": before, "replicas_after": after}


def test_scale_up_waits_for_the_gpu_nodes_and_reports_them(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    MachineController(c)
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 2, "timeout": 10}, cluster=c, diff=True)
    assert not failed, result["msg"]
    assert result["changed"] is True
    assert result["machinesets"] == [ready_entry("gpu-a", 0, 2, 2)]
    assert result["diff"] == {"before": {"machinesets": {"gpu-a": {"replicas": 0}}},
                              "after": {"machinesets": {"gpu-a": {"replicas": 2}}}}
    assert [(w["verb"], w["name"], w["dry_run"], w["replicas"]) for w in c.writes] == [("scale", "gpu-a", False, 2)]


def test_label_selectors_scale_only_the_machinesets_not_there_yet(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-b", zone="a"), gpu_machineset("gpu-a", zone="a"), gpu_machineset("gpu-c", zone="b"))
    MachineController(c)
    run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "timeout": 10}, cluster=c)
    c.writes.clear()
    result, failed = run_module("machineset_scale", {"label_selectors": ["role=gpu", "zone=a"], "replicas": 1,
                                                     "timeout": 10}, cluster=c, diff=True)
    assert not failed, result["msg"]
    assert result["changed"] is True
    assert [(w["verb"], w["name"]) for w in c.writes] == [("scale", "gpu-b")]
    assert result["machinesets"] == [ready_entry("gpu-a", 1, 1, 1), ready_entry("gpu-b", 0, 1, 1)]
    assert result["diff"]["before"] == {"machinesets": {"gpu-a": {"replicas": 1}, "gpu-b": {"replicas": 0}}}
    assert result["diff"]["after"] == {"machinesets": {"gpu-a": {"replicas": 1}, "gpu-b": {"replicas": 1}}}
    assert c.find(API, "MachineSet", "gpu-c", NS)["spec"]["replicas"] == 0


def test_scale_to_zero_waits_for_the_nodes_to_go(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    MachineController(c)
    run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "timeout": 10}, cluster=c)
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 0, "timeout": 10}, cluster=c)
    assert not failed, result["msg"]
    assert result["changed"] is True
    assert result["machinesets"] == [ready_entry("gpu-a", 1, 0, 0)]
    assert c.list("v1", "Node")[0] == [] and c.list(API, "Machine", NS)[0] == []


def test_without_wait_the_entries_tell_what_is_still_missing(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "wait": False}, cluster=c)
    assert not failed and result["changed"] is True
    entry, = result["machinesets"]
    assert entry["ready"] is False and entry["replicas_before"] == 0 and entry["replicas_after"] == 1
    assert entry["waiting_for"] == ["status.readyReplicas 0 to become 1", "status.availableReplicas 0 to become 1",
                                    "0 Machines to become 1"]


def test_a_failed_machine_ends_the_wait_and_says_the_scale_happened(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    MachineController(c, failed=True)
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "timeout": 10}, cluster=c)
    assert failed and result["changed"] is True
    assert result["msg"] == (
        "Machine gpu-a-0 of MachineSet gpu-a failed: InsufficientCapacity: no g5.12xlarge capacity in us-east-1a. "
        "A failed Machine is not replaced: delete it or scale the MachineSet down to retry "
        "(while waiting for 1 MachineSet(s) to have 1 ready replicas)")
    assert result["machinesets"][0]["machines"] == [{"name": "gpu-a-0", "phase": "Failed"}]


def test_a_machineset_deleted_while_waiting_ends_the_wait(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    MachineController(c, deleted=True)
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "timeout": 10}, cluster=c)
    assert failed and result["changed"] is True
    assert result["msg"] == "MachineSet gpu-a was deleted (while waiting for 1 MachineSet(s) to have 1 ready replicas)"
    assert result["machinesets"][0]["ready"] is False


def test_nodes_outside_node_selector_do_not_count(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    MachineController(c, node_labels={"pool": "cpu"})
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "timeout": 1,
                                                     "node_selector": ["pool=gpu"]}, cluster=c)
    assert failed and result["changed"] is True
    assert result["msg"].startswith("Timed out after 1s waiting for 1 MachineSet(s) to have 1 ready replicas")
    assert result["machinesets"][0]["waiting_for"] == [
        "the Node of Machine gpu-a-0 (not found or not matching node_selector)"]


def test_a_node_with_too_few_gpus_is_waited_for(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    MachineController(c, gpus=4)
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "wait": False,
                                                     "min_gpus_per_node": 8}, cluster=c)
    assert not failed
    assert result["machinesets"][0]["waiting_for"] == [
        "Node gpu-a-0-node to publish 8 nvidia.com/gpu (allocatable 4)"]
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "wait": False,
                                                     "gpu_resource": "amd.com/gpu"}, cluster=c)
    assert not failed and result["changed"] is False
    assert result["machinesets"][0]["waiting_for"] == ["Node gpu-a-0-node to publish 4 amd.com/gpu (allocatable 0)"]


@pytest.mark.parametrize("args,msg", [
    ({"label_selectors": [" ", ""]},
     "label_selectors is empty: it would select every MachineSet in namespace 'openshift-machine-api'; "
     "give at least one selector"),
    ({"name": "gpu-a", "timeout": 0}, "wait_timeout must be at least 1 second, got 0"),
    ({"label_selectors": ["role=cpu"]}, "No MachineSet in namespace 'openshift-machine-api' matches label selector 'role=cpu'"),
])
def test_bad_input_fails_before_any_write(run_module, args, msg) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"))
    result, failed = run_module("machineset_scale", dict(args, replicas=1), cluster=c)
    assert failed and result["msg"] == msg
    assert c.writes == []


def test_no_wait_takes_any_wait_timeout(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a", replicas=1))
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1, "wait": False, "timeout": 0},
                                cluster=c)
    assert not failed and result["changed"] is False


def test_a_refused_scale_names_the_machineset_and_what_changed_before(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a"), gpu_machineset("gpu-b"))
    c.refuse[("MachineSet", "gpu-b")] = "GPU quota of the project exceeded"
    result, failed = run_module("machineset_scale", {"label_selectors": ["role=gpu"], "replicas": 1, "wait": False},
                                cluster=c)
    assert failed and result["changed"] is True  # gpu-a was scaled
    assert result["msg"] == ("Scaling MachineSet 'gpu-b' failed: HTTP 403: admission webhook denied the request: "
                             "GPU quota of the project exceeded")
    c.refuse[("MachineSet", "gpu-a")] = "GPU quota of the project exceeded"
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 2, "wait": False}, cluster=c)
    assert failed and result["changed"] is False


def test_a_cluster_without_the_machine_api_is_told_apart(run_module) -> None:
    cluster = FakeCluster(served={"machine.openshift.io": []})
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 1}, cluster=cluster)
    assert failed and not result.get("changed")
    assert result["msg"] == ("The Kubernetes API does not serve MachineSet in machine.openshift.io/v1beta1 (the cluster "
                             "serves no machine.openshift.io API at all: is this OpenShift with the Machine API?)")
    assert not [w for w in cluster.writes if not w["dry_run"]]


def test_scale_to_zero_waits_for_every_node_it_had_whatever_node_selector(run_module) -> None:
    # node_selector picks the Nodes that count on the way up; on the way down each Node the
    # MachineSet had must be gone, matching or not.
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a", replicas=1))
    MachineController(c, node_labels={"pool": "cpu"}).reconcile(c, "scale", c.find(API, "MachineSet", "gpu-a", NS))
    c.on_write.clear()  # the controller is slow to act on the scale down
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 0, "wait": False,
                                                     "node_selector": ["pool=gpu"]}, cluster=c)
    assert not failed and result["changed"] is True
    entry, = result["machinesets"]
    assert "Node gpu-a-0-node to be deleted" in entry["waiting_for"] and entry["ready"] is False
    assert entry["nodes"] == [{"name": "gpu-a-0-node", "ready": True, "gpus": 4}]


class RecordingCluster(FakeCluster):
    """Records what each list and watch asked for: a namespaced Role allows no cluster-wide Machine read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: set = set()

    def list(self, api_version: str, kind: str, namespace: Optional[str] = None, label_selector: Optional[str] = None,
             field_selector: Optional[str] = None) -> Any:
        self.reads.add((kind, namespace, label_selector, field_selector))
        return super().list(api_version, kind, namespace, label_selector, field_selector)

    def watch(self, api_version: str, kind: str, resource_version: str, timeout: int, namespace: Optional[str] = None,
              label_selector: Optional[str] = None, field_selector: Optional[str] = None) -> Any:
        self.reads.add((kind, namespace, label_selector, field_selector))
        return super().watch(api_version, kind, resource_version, timeout, namespace, label_selector, field_selector)


@pytest.mark.parametrize("args,machinesets", [
    ({"name": "gpu-a"}, ("MachineSet", NS, None, "metadata.name=gpu-a")),
    ({"label_selectors": ["role=gpu", "zone=a"]}, ("MachineSet", NS, "role=gpu,zone=a", None)),
])
def test_the_wait_reads_only_the_selected_machinesets_in_their_namespace(run_module, args, machinesets) -> None:
    c = RecordingCluster()
    c.add(gpu_machineset("gpu-a", zone="a"), gpu_machineset("gpu-b", zone="b"))
    MachineController(c, node_labels={"pool": "gpu"})
    result, failed = run_module("machineset_scale", dict(args, replicas=1, timeout=10, node_selector=["pool=gpu"]),
                                cluster=c)
    assert not failed, result["msg"]
    assert [e["name"] for e in result["machinesets"]] == ["gpu-a"]
    assert machinesets in c.reads
    assert ("Machine", NS, None, None) in c.reads
    assert ("Node", None, "pool=gpu", None) in c.reads
    assert not {r for r in c.reads if r[0] in ("MachineSet", "Machine") and r[1] != NS}
    assert not {r for r in c.reads if r[0] == "MachineSet" and r[2:] == (None, None)}


def test_scale_to_zero_reports_a_node_that_outlives_its_machine(run_module) -> None:
    c = FakeCluster()
    c.add(gpu_machineset("gpu-a", replicas=1))
    MachineController(c).reconcile(c, "scale", c.find(API, "MachineSet", "gpu-a", NS))
    c.on_write[:] = [lambda cluster, verb, obj: cluster.remove(API, "Machine", "gpu-a-0", NS)]  # the Node stays
    result, failed = run_module("machineset_scale", {"name": "gpu-a", "replicas": 0, "timeout": 1}, cluster=c)
    assert failed and result["msg"].startswith("Timed out after 1s waiting for 1 MachineSet(s) to have 0 ready replicas")
    entry, = result["machinesets"]
    assert entry["nodes"] == [{"name": "gpu-a-0-node", "ready": True, "gpus": 4}]
    assert "Node gpu-a-0-node to be deleted" in entry["waiting_for"]
