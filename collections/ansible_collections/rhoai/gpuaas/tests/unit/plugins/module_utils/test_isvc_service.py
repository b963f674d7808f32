# -*- coding: utf-8 -*-
"""isvc_replicas' orchestration: validation first, dry runs in check mode, the diff as the server answered."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.rhoai.gpuaas.plugins.module_utils import isvc_service as svc
from ansible_collections.rhoai.gpuaas.plugins.module_utils.errors import GpuaasError
from ansible_collections.rhoai.gpuaas.tests.unit.plugins import objects as o
from ansible_collections.rhoai.gpuaas.tests.unit.plugins.fake_cluster import FakeCluster


def params(**kw: Any) -> Dict[str, Any]:
    base = {"name": "m", "namespace": o.NS, "replicas": None, "state": "stopped", "strategy": "auto", "wait": True,
            "wait_for": None, "wait_timeout": 5, "kueue_api_version": "auto"}
    base.update(kw)
    return base


def running() -> FakeCluster:
    cluster = FakeCluster()
    p = o.pod("m")
    cluster.add(o.isvc("m"), p, o.workload(p, admitted_to="nvidia-l4-4gpu"), o.local_queue(), o.cluster_queue(),
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m-predictor", "namespace": o.NS},
                 "spec": {"replicas": 1}})
    return cluster


def test_check_mode_dry_runs_the_patch_and_diffs_the_servers_answer() -> None:
    cluster = running()
    answered = []
    real_patch = cluster.patch

    def webhook_adds(api_version, kind, name, namespace, body, content_type="application/merge-patch+json", dry_run=False):
        obj = real_patch(api_version, kind, name, namespace, body, content_type, dry_run)
        obj["metadata"]["annotations"]["serving.kserve.io/stop"] = "True"  # what the server made of it
        answered.append(dry_run)
        return obj
    cluster.patch = webhook_adds
    result = svc.apply_replicas(cluster, params(), check_mode=True, want_diff=True, warn=lambda m: None)
    assert answered == [True] and result["changed"] is True
    assert result["diff"] == {"before": {"metadata": {"annotations": {"serving.kserve.io/stop": "false"}}},
                              "after": {"metadata": {"annotations": {"serving.kserve.io/stop": "True"}}}}
    assert cluster.find(o.ISVC, "InferenceService", "m", o.NS)["metadata"]["annotations"]["serving.kserve.io/stop"] == "false"


def test_check_mode_dry_runs_a_deployment_scale() -> None:
    cluster = running()
    result = svc.apply_replicas(cluster, params(strategy="deployment_scale"), True, True, lambda m: None)
    assert [(w["verb"], w["dry_run"], w.get("replicas")) for w in cluster.writes] == [("scale", True, 0)]
    assert result["diff"]["after"] == {"deployment": {"name": "m-predictor", "replicas": 0}}
    assert cluster.find("apps/v1", "Deployment", "m-predictor", o.NS)["spec"]["replicas"] == 1


@pytest.mark.parametrize("change, message", [
    ({"state": None, "replicas": -1}, "replicas must be >= 0, got -1"),
    ({"wait_timeout": 0}, "wait_timeout must be > 0, got 0"),
    ({"wait_for": "admitted"}, "wait_for=admitted contradicts state=stopped"),
    ({"name": "nope"}, "InferenceService nope not found in namespace private-ai"),
])
def test_bad_input_fails_before_any_write(change, message) -> None:
    cluster = running()
    with pytest.raises(GpuaasError, match=message):
        svc.apply_replicas(cluster, params(**change), False, False, lambda m: None)
    assert cluster.writes == []


def test_starting_checks_the_cluster_queue_covers_what_the_pod_asks() -> None:
    cluster = running()
    cluster.update(o.isvc("m", stopped=True))
    cluster.remove("v1", "Pod", "m-predictor-abc12", o.NS)
    pod = o.pod("m")
    pod["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = "10Gi"
    cluster.update(pod)
    with pytest.raises(GpuaasError, match="requests ephemeral-storage which ClusterQueue rhoai-main-queue does not cover"):
        svc.apply_replicas(cluster, params(state="started"), False, False, lambda m: None)
    assert cluster.writes == []


def test_stopping_waits_until_pods_and_workloads_are_gone() -> None:
    cluster = running()

    def kserve(c: FakeCluster, verb: str, obj: Dict[str, Any]) -> None:
        if obj["kind"] == "InferenceService" and obj["metadata"]["annotations"]["serving.kserve.io/stop"] == "true":
            c.remove("v1", "Pod", "m-predictor-abc12", o.NS)
            c.remove(o.KUEUE, "Workload", "pod-m-predictor-abc12-1a2b3", o.NS)
    cluster.on_write.append(kserve)
    result = svc.apply_replicas(cluster, params(), False, False, lambda m: None)
    assert result["changed"] is True and result["pods"] == [] and result["workloads"] == []
    assert result["wait_for"] == "stopped"


def test_a_timeout_returns_what_was_seen_last() -> None:
    cluster = running()  # no controller: the pod never goes
    with pytest.raises(GpuaasError, match="Timed out after 1s waiting for InferenceService private-ai/m to be stopped") as err:
        svc.apply_replicas(cluster, params(wait_timeout=1), False, False, lambda m: None)
    assert err.value.result["pods"][0]["name"] == "m-predictor-abc12" and err.value.result["changed"] is True
