"""rhoai.gpuaas.isvc_replicas against the testbed (real KServe 0.16 and Kueue 0.17, kwok GPU nodes).

Bad input (wrong types, missing objects, unreachable endpoints, ...) is in test_bad_inputs.py.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest
from kubernetes import client

import _kueue_objects as ko

pytestmark = pytest.mark.integration


@pytest.fixture
def cq(k8s: client.ApiClient, namespace: str, gpu_nodes: list[str], kueue_flavors: list[str]) -> Iterator[str]:
    with ko.queues(k8s, namespace) as name:
        yield name


def version(k8s: client.ApiClient, name: str, namespace: str) -> tuple:
    """What a user change would alter: generation, annotations, labels.

    Not resourceVersion: KServe keeps writing the status (pods starting, Deployment scaled).
    """
    meta = ko.isvc(k8s, name, namespace)["metadata"]
    return meta["generation"], meta.get("annotations"), meta.get("labels")


def deployment_replicas(k8s: client.ApiClient, name: str, namespace: str) -> int | None:
    dep = ko.get(k8s, "apps/v1", "Deployment", name + "-predictor", namespace)
    return None if dep is None else dep["spec"]["replicas"]


def admitted(run_module: Callable[..., dict], name: str, namespace: str, **extra: Any) -> dict:
    args = {"name": name, "namespace": namespace, "wait_for": "admitted", "wait_timeout": 120, **extra}
    if "replicas" not in args:
        args["state"] = "started"
    result = run_module("isvc_replicas", args)
    assert [w["state"] for w in result["workloads"]] == ["admitted"]
    return result


@pytest.mark.parametrize("strategy", ["auto", "stop_annotation"])
def test_stop_annotation_off_check_idempotent_on(k8s: client.ApiClient, run_module: Callable[..., dict],
                                                 namespace: str, cq: str, strategy: str) -> None:
    ko.create(k8s, ko.inference_service("llm", namespace, 1))
    first = admitted(run_module, "llm", namespace, strategy=strategy)
    assert first["changed"] is False  # already on: nothing to change, just the wait
    assert first["workloads"][0]["flavors"][ko.GPU] == "nvidia-l4-1gpu"

    before = version(k8s, "llm", namespace)
    checked = run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "state": "stopped",
                                           "strategy": strategy}, check=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["after"] == {"metadata": {"annotations": {ko.STOP: "true"}}}
    assert version(k8s, "llm", namespace) == before
    assert len(ko.predictor_pods(k8s, "llm", namespace)) == 1

    off = run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "state": "stopped",
                                       "strategy": strategy, "wait_timeout": 120}, diff=True)
    assert off["changed"] is True and off["wait_for"] == "stopped"
    assert off["diff"]["before"] == {"metadata": {"annotations": {ko.STOP: None}}}
    assert off["pods"] == [] and off["workloads"] == []
    assert off["isvc"]["stopped"] is True
    assert ko.predictor_pods(k8s, "llm", namespace) == []
    assert deployment_replicas(k8s, "llm", namespace) is None  # KServe deleted the Deployment

    again = run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "replicas": 0, "strategy": strategy})
    assert again["changed"] is False

    on = admitted(run_module, "llm", namespace, strategy=strategy)
    assert on["changed"] is True
    assert ko.isvc(k8s, "llm", namespace)["metadata"]["annotations"][ko.STOP] == "false"

    ready = run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "state": "started",
                                         "wait_for": "ready", "wait_timeout": 120})
    assert ready["changed"] is False
    assert {c["type"]: c["status"] for c in ready["isvc"]["conditions"]}["Ready"] == "True"
    assert ready["pods"][0]["ready"] is True


def test_autoscaler_none(k8s: client.ApiClient, run_module: Callable[..., dict], namespace: str, cq: str) -> None:
    ko.create(k8s, ko.inference_service("llm", namespace, 1))
    admitted(run_module, "llm", namespace)
    off = run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "replicas": 0,
                                       "strategy": "autoscaler_none", "wait_timeout": 120}, diff=True)
    assert off["changed"] is True
    # the server stores maxReplicas 0 as absent (omitempty): the diff shows what it stores
    assert off["diff"]["after"]["spec"]["predictor"] == {"minReplicas": 0, "maxReplicas": None}
    assert off["pods"] == [] and off["workloads"] == []
    assert deployment_replicas(k8s, "llm", namespace) == 0
    assert run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "replicas": 0,
                                        "strategy": "autoscaler_none"})["changed"] is False
    on = admitted(run_module, "llm", namespace, strategy="autoscaler_none", replicas=1)
    assert on["changed"] is True and deployment_replicas(k8s, "llm", namespace) == 1


def test_deployment_scale(k8s: client.ApiClient, run_module: Callable[..., dict], namespace: str, cq: str) -> None:
    ko.create(k8s, ko.inference_service("llm", namespace, 1))
    admitted(run_module, "llm", namespace)
    isvc_version = version(k8s, "llm", namespace)
    off = run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "replicas": 0,
                                       "strategy": "deployment_scale", "wait_timeout": 120}, diff=True)
    assert off["changed"] is True
    assert off["diff"]["after"] == {"deployment": {"name": "llm-predictor", "replicas": 0}}
    assert off["pods"] == [] and off["workloads"] == []
    assert deployment_replicas(k8s, "llm", namespace) == 0
    assert version(k8s, "llm", namespace) == isvc_version  # the ISVC spec and annotations are untouched
    assert run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "replicas": 0,
                                        "strategy": "deployment_scale"})["changed"] is False
    on = admitted(run_module, "llm", namespace, strategy="deployment_scale", replicas=1)
    assert on["changed"] is True


def test_min_replicas_warns_and_keeps_the_gpu(k8s: client.ApiClient, run_module: Callable[..., dict],
                                              namespace: str, cq: str) -> None:
    """The original demo's approach: minReplicas 0 under the hpa class frees nothing."""
    ko.create(k8s, ko.inference_service("llm", namespace, 1))
    admitted(run_module, "llm", namespace)
    result = run_module("isvc_replicas", {"name": "llm", "namespace": namespace, "replicas": 0,
                                          "strategy": "min_replicas", "wait_timeout": 15}, expect_fail=True)
    assert any("frees NO GPU" in w for w in result.get("warnings", []))
    assert "Timed out" in result["msg"] and "last state" in result["msg"]
    assert [w["state"] for w in result["workloads"]] == ["admitted"]  # the GPU is still held
    assert len(ko.predictor_pods(k8s, "llm", namespace)) == 1


def test_uncovered_resource_fails_preflight(k8s: client.ApiClient, run_module: Callable[..., dict],
                                            namespace: str, cq: str) -> None:
    ko.create(k8s, ko.inference_service("disk", namespace, 1, stopped=True,
                                        extra_requests={"ephemeral-storage": "10Gi"}))
    before = version(k8s, "disk", namespace)
    result = run_module("isvc_replicas", {"name": "disk", "namespace": namespace, "state": "started"},
                        expect_fail=True)
    assert "ephemeral-storage" in result["msg"] and cq in result["msg"]
    assert "coveredResources" in result["msg"]
    assert version(k8s, "disk", namespace) == before
    assert ko.isvc(k8s, "disk", namespace)["metadata"]["annotations"][ko.STOP] == "true"
