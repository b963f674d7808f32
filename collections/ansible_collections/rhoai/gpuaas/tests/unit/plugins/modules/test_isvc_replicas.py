# -*- coding: utf-8 -*-
"""isvc_replicas as Ansible runs it: arguments, aliases, check mode, errors."""

from __future__ import annotations

from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster


def cluster() -> FakeCluster:
    c = FakeCluster()
    p = o.pod("m")
    c.add(o.isvc("m"), p, o.workload(p, admitted_to="nvidia-l4-4gpu"))
    return c


def test_replicas_and_state_are_mutually_exclusive(run_module) -> None:
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS, "replicas": 0, "state": "stopped"})
    assert failed and "mutually exclusive" in result["msg"]


def test_one_of_replicas_and_state_is_required(run_module) -> None:
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS})
    assert failed and "one of the following is required: replicas, state" in result["msg"]


def test_unknown_wait_for_names_the_choices(run_module) -> None:
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS, "state": "started", "wait_for": "soon"})
    assert failed and "wait_for" in result["msg"] and "stopped, queued, pending, admitted, ready" in result["msg"]


def test_check_mode_sends_a_dry_run_and_returns_the_diff(run_module) -> None:
    c = cluster()
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS, "state": "stopped",
                                                  "timeout": 30, "api_version": "kueue.x-k8s.io/v1beta2"},
                                cluster=c, check=True, diff=True)
    assert not failed and result["changed"] is True and result["wait_for"] == "stopped"
    assert [(w["verb"], w["dry_run"]) for w in c.writes] == [("patch", True)]
    assert result["diff"]["after"]["metadata"]["annotations"]["serving.kserve.io/stop"] == "true"
    assert "elapsed" in result


def test_wait_false_returns_after_the_write(run_module) -> None:
    c = cluster()
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS, "state": "stopped", "wait": False},
                                cluster=c)
    assert not failed and [w["dry_run"] for w in c.writes] == [False] and result["pods"][0]["name"] == "m-predictor-abc12"


def test_an_api_refusal_is_one_line(run_module) -> None:
    c = cluster()
    c.refuse[("InferenceService", "m")] = 'deploymentMode cannot be changed from "Standard" to "RawDeployment"'
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS, "state": "stopped"}, cluster=c)
    assert failed and result["msg"].startswith("Kubernetes API error: HTTP 403: admission webhook denied the request")
    assert "\n" not in result["msg"]


def test_a_missing_isvc_is_named(run_module) -> None:
    result, failed = run_module("isvc_replicas", {"name": "x", "namespace": o.NS, "state": "started"}, cluster=cluster())
    assert failed and result["msg"] == "InferenceService x not found in namespace private-ai."


def test_an_unserved_kueue_version_names_the_option(run_module) -> None:
    """RHOAI 3.0's Kueue serves only v1beta1; asking for v1beta2 names what it serves and the option."""
    c = cluster()
    c.served = {"kueue.x-k8s.io": ["v1beta1"]}
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS, "state": "started",
                                                  "kueue_api_version": "v1beta2"}, cluster=c)
    assert failed and c.writes == []
    assert result["msg"].startswith("The Kubernetes API does not serve ")
    assert result["msg"].endswith(" in kueue.x-k8s.io/v1beta2 (it serves kueue.x-k8s.io/v1beta1: "
                                  "set kueue_api_version to one of them, or auto)")


def test_connection_failure_is_reported_without_traceback(run_module) -> None:
    from ansible_collections.rhoai.gpuaas.plugins.module_utils.k8s_client import K8sUnreachable
    down = K8sUnreachable("The Kubernetes API at https://x:6443 is unreachable: connection refused. Check ...")
    result, failed = run_module("isvc_replicas", {"name": "m", "namespace": o.NS, "state": "started"}, cluster=down)
    assert failed and result["msg"].startswith("The Kubernetes API at https://x:6443 is unreachable")
    assert "exception" not in result
