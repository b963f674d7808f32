# -*- coding: utf-8 -*-
"""kueue_wait as Ansible runs it."""

from __future__ import annotations

from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster


def pending_cluster() -> FakeCluster:
    c = FakeCluster()
    p = o.pod("m", gated=True, ready=False)
    c.add(o.isvc("m", ready=False), p, o.workload(p, pending=o.PENDING_4), o.local_queue(), o.cluster_queue())
    return c


def test_exactly_one_target(run_module) -> None:
    result, failed = run_module("kueue_wait", {"namespace": o.NS, "isvc": "m", "workload": "w"})
    assert failed and "mutually exclusive" in result["msg"]
    result, failed = run_module("kueue_wait", {"namespace": o.NS})
    assert failed and "one of the following is required: isvc, pod_selector, workload" in result["msg"]


def test_pending_returns_kueues_reason_and_the_usage(run_module) -> None:
    result, failed = run_module("kueue_wait", {"namespace": o.NS, "isvc": "m", "state": "pending", "timeout": 5,
                                               "api_version": "kueue.x-k8s.io/v1beta2"}, cluster=pending_cluster())
    assert not failed and result["reached"] is True and result["changed"] is False
    assert result["workloads"][0]["pending"]["more_needed"] == "4"
    assert result["cluster_queue"] == "rhoai-main-queue" and result["api_version"] == "kueue.x-k8s.io/v1beta2"


def test_waiting_on_a_stopped_model_fails_at_once(run_module) -> None:
    c = pending_cluster()
    c.update(o.isvc("m", stopped=True))
    result, failed = run_module("kueue_wait", {"namespace": o.NS, "isvc": "m", "state": "admitted",
                                               "wait_timeout": 60}, cluster=c)
    # Refused at once with the reason, not at the end of its 60 s ("Timed out after 60s ...").
    assert failed and "InferenceService m is stopped" in result["msg"] and "Timed out" not in result["msg"]


def test_wait_false_reports_without_failing(run_module) -> None:
    result, failed = run_module("kueue_wait", {"namespace": o.NS, "isvc": "m", "state": "admitted", "wait": False},
                                cluster=pending_cluster())
    assert not failed and result["reached"] is False and result["workloads"][0]["state"] == "pending"


def test_a_timeout_fails_with_the_last_state(run_module) -> None:
    result, failed = run_module("kueue_wait", {"namespace": o.NS, "isvc": "m", "state": "admitted", "wait_timeout": 1},
                                cluster=pending_cluster())
    assert failed and result["msg"].startswith("Timed out after 1s waiting for Kueue workloads of isvc m")
    assert result["workloads"][0]["message"] == o.PENDING_4 and result["reached"] is False


def test_bad_timeout_is_refused_before_connecting(run_module) -> None:
    result, failed = run_module("kueue_wait", {"namespace": o.NS, "isvc": "m", "wait_timeout": 0}, cluster=FakeCluster())
    assert failed and result["msg"] == "wait_timeout must be > 0, got 0"
