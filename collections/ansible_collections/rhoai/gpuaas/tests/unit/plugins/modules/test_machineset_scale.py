# -*- coding: utf-8 -*-
"""machineset_scale as Ansible runs it."""

from __future__ import annotations

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
